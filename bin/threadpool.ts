/**
 * Imported first by bin/start.ts: libuv's thread pool (4 threads by default) runs every fs call,
 * and the upload path makes several per file (write, fsync, rename, statfs). With many concurrent
 * uploads 4 threads queue them; this must be set before the pool is first used.
 */
process.env['UV_THREADPOOL_SIZE'] ??= '32';
