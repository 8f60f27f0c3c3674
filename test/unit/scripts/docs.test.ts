/** The generated docs (docs/configuration.md, docs/errors.md) are what `npm run docs` writes from the code now. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '@signspool/shared/config';
import { errorCatalog } from '@signspool/shared/errors';
import { generatedDocs, renderConfiguration, renderErrors, ROOT } from '../../../scripts/docs.js';

describe('generated docs', () => {
  for (const { file, content } of generatedDocs()) {
    it(`${file} is current`, () => {
      const onDisk = readFileSync(path.join(ROOT, file), 'utf8');
      // Compared as a boolean first so that a stale file fails with the one instruction that fixes it.
      expect(onDisk === content, `${file} is stale: run npm run docs and commit it`).toBe(true);
    });
  }

  it('configuration.md has one row per variable of the schema, with its default', () => {
    const md = renderConfiguration();
    for (const name of CONFIG_VARIABLES) expect(md).toContain(`| \`${name}\` |`);
    expect(md).toContain('| `BATCH_LINGER` | `250ms` |');
    expect(md).toContain('| `UPLOAD_MAX_FILE_BYTES` | `25MiB` |');
    expect(md).toContain('| `PORT` | `8080` |');
  });

  it('errors.md has one row per catalog code, with its status and retryable flag', () => {
    const md = renderErrors();
    for (const code of Object.keys(errorCatalog)) expect(md).toContain(`| \`${code}\` |`);
    expect(md).toContain('| `FILE_TOO_LARGE` | 413 | no |');
    expect(md).toContain('| `UPSTREAM_UNAVAILABLE` | 503 | yes |');
  });
});
