# lineage-audit: `serve` from the compiled build. Not built by this project's CI (no Docker engine
# there); test/unit/packaging/docker.test.ts checks that every file named here exists.

# Build stage: compile services/ into dist/ and bundle the console (web/) into dist/web, with the
# development dependencies (TypeScript, vite).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY services ./services
COPY web ./web
RUN npm run build

# Runtime: the compiled JavaScript and the production dependencies, nothing else.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
# The embedded store (when CLICKHOUSE_URL is not set) lives in a volume the unprivileged user owns.
ENV LINEAGE_AUDIT_DATA=/data/store
RUN mkdir -p /data && chown node:node /data
VOLUME /data
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY schemas ./schemas
COPY rules ./rules
USER node
ENTRYPOINT ["node", "--max-semi-space-size=64", "bin/lineage-audit.mjs"]
CMD ["serve", "--host", "0.0.0.0"]
