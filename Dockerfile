# syntax=docker/dockerfile:1
# One image for api, worker and the fake Sign'Stash; the command chooses the role.
# build:   every dependency, then `npm run build` bundles the TypeScript into dist/.
# runtime: production dependencies and dist/ only, run by node directly (PID 1 gets SIGTERM).
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY api/package.json api/
COPY worker/package.json worker/
COPY test/package.json test/
# Install scripts stay off, as in package.json "allowScripts" (esbuild's binary is its own package).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts/build.mjs scripts/
COPY bin bin
COPY cli cli
COPY shared shared
COPY api api
COPY worker worker
COPY test/fake-signstash test/fake-signstash
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080 DATA_DIR=/data
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY api/package.json api/
COPY worker/package.json worker/
COPY test/package.json test/
# --omit=optional as well: typescript (23 MB) reaches the tree only as an optional peer of
# valibot (Bull Board's validator) and would otherwise be installed; the rest of what it drops is
# msgpackr's optional native speed-up. node_modules: 99 MB (168 MB before, docs/operations.md).
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force \
  && mkdir -p /data /spool && chown node:node /data /spool
COPY --from=build /app/dist dist
COPY bin/signspool.mjs bin/
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.PORT + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--initial-old-space-size=128", "--max-semi-space-size=64", "--min-semi-space-size=16", "--enable-source-maps", "dist/bin/start.js", "all"]
