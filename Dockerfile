# syntax=docker/dockerfile:1
# The pgferry CLI, for docker-compose.yml: it talks to PostgreSQL through DATABASE_URL.
#   docker build -t pgferry .
#   docker run --rm -e DATABASE_URL=postgres://… -v "$PWD/data:/app/data" pgferry load data/catalog.csv -t acme -m products

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm ci installs the dev dependencies (TypeScript) and already builds dist/ through the
# "prepare" script; the explicit build keeps this step obvious. Then drop the dev dependencies.
RUN npm ci --no-audit --no-fund \
 && npm run build \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY sql ./sql
COPY mappings ./mappings
COPY examples ./examples
# Input files and rejects CSVs go here; docker-compose.yml mounts ./data over it.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
ENTRYPOINT ["node", "bin/pgferry.js"]
CMD ["--help"]
