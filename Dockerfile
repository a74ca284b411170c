# pgwarden production image: build with dev dependencies, ship only dist/ and runtime deps.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config/example.yaml ./config/example.yaml
RUN ln -s /app/dist/cli.js /usr/local/bin/pgwarden && chmod +x /app/dist/cli.js
USER node
EXPOSE 6432 6433
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--config", "/etc/pgwarden/pgwarden.yaml"]
