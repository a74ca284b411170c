# pgwarden production image: build with dev dependencies, ship only dist/ and runtime deps.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
# postgresql-client: pg_basebackup for the shipped backup hook, psql for hooks of your own.
# Debian bookworm's is version 15; pg_basebackup refuses servers newer than itself, so for
# PostgreSQL 16+ install postgresql-client-NN from apt.postgresql.org instead.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config/example.yaml ./config/example.yaml
COPY config/hooks ./config/hooks
# The backup hook's BACKUP_DIR (mount a volume here, see the README, "Container").
RUN ln -s /app/dist/cli.js /usr/local/bin/pgwarden && chmod +x /app/dist/cli.js /app/config/hooks/*.sh \
 && mkdir -p /var/backups/pgwarden && chown node:node /var/backups/pgwarden
USER node
EXPOSE 6432 6433 8404
# Asks the running proxy's admin API (GET /status at admin.bind from the config) and fails when
# it does not answer, so the config needs an `admin:` section; without one the check fails and
# the container stays unhealthy. `|| exit 1`: Docker reserves exit status 2 (bad config here).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD node /app/dist/cli.js status --config /etc/pgwarden/pgwarden.yaml >/dev/null || exit 1
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--config", "/etc/pgwarden/pgwarden.yaml"]
