/** Incompressible test documents on disk, each MiB block numbered so no two blocks are equal. */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';

const MB = 1024 * 1024;

export const writeRandomFile = async (file: string, size: number): Promise<void> => {
  const block = randomBytes(MB);
  let left = size;
  let n = 0;
  await pipeline(
    (function* () {
      while (left > 0) {
        const len = Math.min(left, block.length);
        const c = Buffer.from(block.subarray(0, len));
        c.writeUInt32BE(n++, 0);
        left -= len;
        yield c;
      }
    })(),
    createWriteStream(file),
  );
};
