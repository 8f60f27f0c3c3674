/**
 * Node flags every process that runs the api is started with (package.json scripts, compose, the
 * image, the Kubernetes manifest, the test harness, the bench; a test checks the launchers).
 * `--max-semi-space-size=64`: each request's short-lived objects (HTTP, the Redis command and its
 * reply, the answer) die young, but with the default 16 MiB semi-spaces the scavenger ran so often
 * that it took about a quarter of a status read's CPU, copying the objects of the requests in
 * flight at each run; larger semi-spaces run it less often for the same survivors.
 * `--min-semi-space-size=16` (the default's largest): without it V8 shrank and regrew the young
 * generation between uploads, an mmap and munmap every second upload.
 */
export const API_NODE_FLAGS = ['--max-semi-space-size=64', '--min-semi-space-size=16'] as const;
