/**
 * A TCP proxy in front of a redis-server that can run an action at one exact command: armed with
 * a needle (bytes of that command, e.g. a script's sha1), it calls the action just before it
 * forwards the first client bytes that contain it. A test stops the server there (SIGSTOP), so
 * that command and everything after it wait in the server's socket as when Redis hangs mid-request.
 */
import net from 'node:net';

export interface TriggerProxy {
  /** redis://127.0.0.1:<port> of the proxy. */
  url: string;
  /** Resolves once `action` has run, before the bytes containing `needle` are forwarded. */
  arm(needle: string, action: () => void): Promise<void>;
  close(): Promise<void>;
}

export const startTriggerProxy = async (targetPort: number): Promise<TriggerProxy> => {
  let armed: { needle: Buffer; fire: () => void } | undefined;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    // The last bytes of the previous chunk: a needle split between two chunks is still found.
    let tail: Buffer = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      const trigger = armed;
      if (trigger && Buffer.concat([tail, chunk]).includes(trigger.needle)) {
        armed = undefined;
        trigger.fire();
      }
      tail = chunk.subarray(Math.max(0, chunk.length - 64));
      upstream.write(chunk);
    });
    upstream.pipe(client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    arm: (needle, action) =>
      new Promise<void>((resolve) => {
        armed = {
          needle: Buffer.from(needle),
          fire: () => {
            action();
            resolve();
          },
        };
      }),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};
