/**
 * The Content-Security-Policy of the HTML pages the api serves besides its JSON API (Swagger UI at
 * /docs, Bull Board at /admin/queues): scripts, data and fonts from this origin only, inline styles
 * (both set style attributes), images also from data: URIs, no forms, no framing. The API's own
 * responses keep app.ts's stricter global policy.
 */
import helmet from 'helmet';

/** `baseUri`: "'self'" for a page that sets <base href> (Bull Board), else "'none'". */
export const pageCsp = (baseUri: "'self'" | "'none'") =>
  helmet.contentSecurityPolicy({
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", 'data:'],
      fontSrc: ["'self'", 'data:'],
      connectSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: [baseUri],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
  });
