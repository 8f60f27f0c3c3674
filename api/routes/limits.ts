/**
 * GET /v1/limits: the upload limits of this deployment, so a client can refuse a file before
 * sending it. They change only with the configuration: a client may keep them a minute (private:
 * the answer needs a credential, so no shared cache keeps it). Counted in the tenant's reads per
 * second like every other route (app.ts).
 */
import { Router } from 'express';
import type { Config } from '@signspool/shared/config';
import { SIGNATURE_TYPES } from '@signspool/shared/queue';

export const limitsView = (config: Config) => ({
  maxFileBytes: config.upload.maxFileBytes,
  maxFiles: config.upload.maxFiles,
  maxTotalBytes: config.upload.maxTotalBytes,
  maxFields: config.upload.maxFields,
  maxFieldBytes: config.upload.maxFieldBytes,
  signatureTypes: [...SIGNATURE_TYPES],
  defaultSignatureType: config.defaultSignatureType,
});

export const limitsRouter = (config: Config): Router => {
  const router = Router();
  const body = limitsView(config);
  router.get('/', (_req, res) => {
    res.setHeader('Cache-Control', 'private, max-age=60');
    res.json(body);
  });
  return router;
};
