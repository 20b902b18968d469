# syntax=docker/dockerfile:1
# Multi-stage build: compile TypeScript with the dev toolchain, ship only the compiled
# JavaScript, production dependencies and the SQL migrations, running as a non-root user.
#
# Operator commands (the `secrets` CLI is on PATH in the image):
#   docker run --rm -e DATABASE_URL=... IMAGE secrets migrate          apply migrations and exit
#   docker run --rm -e JWT_SECRET=...   IMAGE secrets token --sub ci   print an admin token
#   docker run --rm -e DATABASE_URL=... -e ENCRYPTION_KEYS=... IMAGE secrets rewrap
#   docker exec -it CONTAINER secrets --url http://127.0.0.1:7130 --token-stdin whoami
# With embedded PGlite, run operator commands in the running container (docker exec) or
# with the same /data volume while the service is stopped.

# Node 22 is the active LTS line (Node 20 reached end of life in April 2026).
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm ci's postinstall builds the embedded database's migrated start-up image with these.
COPY scripts/pglite-image.mjs ./scripts/
COPY src/db/pglite-image.mjs src/db/pglite-image.d.mts src/db/migrator.mjs src/db/migrator.d.mts ./src/db/
COPY migrations ./migrations
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The web console (Vite) is built into dist/console beside the compiled server.
COPY console ./console
COPY scripts/console-build.ts scripts/dist-stale.mjs scripts/dist-stale.d.mts ./scripts/
RUN npm run build && npm run console:build && chmod 755 dist/cli/secrets.js

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/pglite-image.mjs ./scripts/
COPY src/db/pglite-image.mjs src/db/migrator.mjs ./src/db/
COPY migrations ./migrations
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# tini as PID 1: forwards signals to node (close-with-grace drains in-flight requests on
# SIGTERM) and reaps zombies; from Debian, so no download outside the package manager.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=7130 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=prod-deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root package.json ./
# The code is owned by root and read-only to the service; only DATA_DIR (embedded PGlite) is writable.
RUN ln -s /app/dist/cli/secrets.js /usr/local/bin/secrets \
 && mkdir -p /data && chown node:node /data && chmod 700 /data
USER node
VOLUME ["/data"]
EXPOSE 7130
# /ready: database reachable and migrated. A first PGlite boot copies the migrated start-up
# image built in prod-deps and then starts as any later boot does (timings in
# docs/benchmarks.md); the start period leaves room for a slow or busy machine.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||7130)+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
