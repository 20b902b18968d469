# syntax=docker/dockerfile:1
# Multi-stage build: compile TypeScript with the dev toolchain, ship only the compiled
# JavaScript, production dependencies and the SQL migrations, running as a non-root user.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The web console (Vite) is built into dist/console beside the compiled server.
COPY console ./console
COPY scripts/console-build.ts ./scripts/
RUN npm run build && npm run console:build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
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
RUN mkdir -p /data && chown node:node /data && chmod 700 /data
USER node
VOLUME ["/data"]
EXPOSE 7130
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||7130)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# node as PID 1 receives SIGTERM directly; close-with-grace drains in-flight requests.
CMD ["node", "dist/main.js"]
