FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY services ./services
COPY schemas ./schemas
COPY rules ./rules
ENTRYPOINT ["node", "bin/lineage-audit.mjs"]
CMD ["serve", "--host", "0.0.0.0"]
