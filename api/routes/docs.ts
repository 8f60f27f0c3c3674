/**
 * /docs: the API reference (Swagger UI served from the swagger-ui-dist package, no CDN). The page
 * runs no inline script, so its Content-Security-Policy allows scripts from this origin only, and
 * no other site may frame it.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import express, { Router } from 'express';
import { pageCsp } from '../http/page-csp.js';

const require = createRequire(import.meta.url);
const assets = path.dirname(require.resolve('swagger-ui-dist/package.json'));

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>signspool API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="docs"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/init.js"></script>
</body>
</html>`;

const INIT = `window.ui = SwaggerUIBundle({ url: 'openapi.json', dom_id: '#docs', deepLinking: true, docExpansion: 'list' });\n`;

const docsCsp = pageCsp("'none'");

export const docsRouter = (): Router => {
  const router = Router();
  router.get('/docs', docsCsp, (_req, res) => {
    res.type('html').send(PAGE);
  });
  router.get('/docs/init.js', docsCsp, (_req, res) => {
    res.type('text/javascript').send(INIT);
  });
  router.use('/docs/assets', docsCsp, express.static(assets, { index: false, maxAge: '1h' }));
  return router;
};
