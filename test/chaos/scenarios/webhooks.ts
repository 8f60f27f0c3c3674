/**
 * Webhooks to a receiver that answers 500 for a while, then is killed (its port closed) and
 * started again on the same port. Every operation that ended must be delivered exactly once as
 * the receiver sees it: one webhook-id answered 2xx per operation (a webhook-id seen again is the
 * same delivery, at-least-once), each signature verified with the `standardwebhooks` package.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import type { Ack, Scenario } from '../driver.js';

const SECRET = 'whsec_' + Buffer.from('chaos-webhook-secret-0123456789abcdef').toString('base64');
/** How long, after every operation ended, deliveries may still take (the schedule's retries). */
const DELIVERY_WAIT_MS = 45_000;

export interface Delivery {
  webhookId: string;
  opId: string | undefined;
  verified: boolean;
  status: number;
}

/** A receiver on a fixed port that can answer 500, be down (port closed) or answer 204. */
class FlakyReceiver {
  readonly deliveries: Delivery[] = [];
  mode: 'ok' | 'error' = 'ok';
  private server: http.Server | undefined;
  private port = 0;
  private readonly verifier = new Webhook(SECRET);

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const header = (name: string): string => String(req.headers[name] ?? '');
        let verified = true;
        let opId: string | undefined;
        try {
          const event = this.verifier.verify(body, {
            'webhook-id': header('webhook-id'),
            'webhook-timestamp': header('webhook-timestamp'),
            'webhook-signature': header('webhook-signature'),
          }) as { data?: { id?: string } };
          opId = event.data?.id;
        } catch {
          verified = false;
        }
        const status = this.mode === 'error' ? 500 : 204;
        this.deliveries.push({ webhookId: header('webhook-id'), opId, verified, status });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Closes the port and every connection, as a killed receiver. */
  async kill(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server)
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
  }
}

let receiver: FlakyReceiver | undefined;

/** Misses per operation that ended: none delivered, delivered under more than one webhook-id, a bad signature, a delivery for an operation not acknowledged. */
export const judgeDeliveries = (ended: Ack[], acked: Ack[], deliveries: Delivery[]): Record<string, { count: number; examples: string[] }> => {
  const ids = new Map<string, Set<string>>();
  for (const d of deliveries) if (d.verified && d.status < 300 && d.opId) ids.set(d.opId, (ids.get(d.opId) ?? new Set()).add(d.webhookId));
  const known = new Set(acked.map((a) => a.opId));
  const missing = ended.filter((a) => !ids.has(a.opId)).map((a) => a.opId);
  const twice = [...ids].filter(([, s]) => s.size > 1).map(([op, s]) => `${op} (${s.size} webhook-ids)`);
  const badSignature = deliveries.filter((d) => !d.verified).map((d) => d.webhookId);
  const unknown = [...ids.keys()].filter((op) => !known.has(op));
  return {
    'webhooks not delivered': { count: missing.length, examples: missing },
    'webhooks delivered twice': { count: twice.length, examples: twice },
    'webhook signatures bad': { count: badSignature.length, examples: badSignature },
    'webhooks for no 202': { count: unknown.length, examples: unknown },
  };
};

export const webhooksFlaky: Scenario = {
  name: 'webhooks-receiver-500-killed',
  title: 'the webhook receiver answers 500 for 4 s, then is down for 6 s, then recovers',
  async prepare() {
    receiver = new FlakyReceiver();
    await receiver.start();
    return {
      env: {
        WEBHOOK_SECRETS: `acme:${SECRET}`,
        WEBHOOK_ALLOW: '127.0.0.1:*',
        WEBHOOK_ALLOW_HTTP: 'true',
        WEBHOOK_TIMEOUT: '2s',
        // Retries within the run (and well within RETENTION).
        WEBHOOK_SCHEDULE: '0,500ms,1s,2s,3s,4s,5s',
      },
      fields: { webhookUrl: receiver.url },
    };
  },
  async run(ctx) {
    const r = receiver;
    if (!r) throw new Error('no receiver');
    await ctx.waitAcked(4);
    r.mode = 'error';
    ctx.log('receiver answers 500');
    await new Promise((res) => setTimeout(res, 4000));
    await r.kill();
    ctx.log('receiver down');
    await new Promise((res) => setTimeout(res, 6000));
    r.mode = 'ok';
    await r.start();
    ctx.log('receiver back');
  },
  async check(ctx, ended) {
    const r = receiver;
    if (!r) throw new Error('no receiver');
    const delivered = (): boolean => judgeDeliveries(ended, ctx.acks(), r.deliveries)['webhooks not delivered']?.count === 0;
    await ctx.waitFor('every ended operation delivered', delivered, DELIVERY_WAIT_MS).catch(() => undefined);
    // A second delivery of an operation would come soon after the first: give it a moment.
    await new Promise((res) => setTimeout(res, 2000));
    const s = (k: number): number => r.deliveries.filter((d) => (k === 0 ? d.status < 300 : d.status >= 300)).length;
    ctx.note(`receiver saw ${r.deliveries.length} requests: ${s(0)} answered 204, ${s(1)} answered 500`);
    return judgeDeliveries(ended, ctx.acks(), r.deliveries);
  },
  async cleanup() {
    await receiver?.kill();
    receiver = undefined;
  },
};
