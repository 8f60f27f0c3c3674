/**
 * Redis `kill -9` under load and a restart from its AOF on the same port, once with
 * DURABILITY=everysec (AOF fsync every second) and once with DURABILITY=strict (Redis 7.0 has no
 * WAITAOF, so strict runs against `appendfsync always`). A SIGKILLed redis-server loses only what
 * it had not yet written to the AOF file (the OS keeps what was written): this measures the
 * process crash, not an OS crash, which would also lose the everysec window.
 */
import type { Scenario } from '../driver.js';

export const redisKill9 = (durability: 'everysec' | 'strict'): Scenario => ({
  name: `redis-kill9-${durability}`,
  title: `Redis kill -9 and restart from the AOF, DURABILITY=${durability}`,
  settings: () => ({ appendFsync: durability === 'strict' ? 'always' : 'everysec', env: { DURABILITY: durability } }),
  async run(ctx) {
    await ctx.waitAcked(8);
    await ctx.redis.stop('SIGKILL');
    ctx.log('redis-server killed (SIGKILL)');
    await new Promise((r) => setTimeout(r, 2000));
    await ctx.redis.start();
    ctx.log('redis-server restarted from its AOF');
    ctx.note(`DURABILITY=${durability}, appendfsync ${ctx.redis.appendFsync}`);
  },
});
