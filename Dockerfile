# One image for every role: `featherman serve` (hooks + admission), `featherman worker` (warm pool)
# and the runner subcommands that Jobs execute. The DuckDB extensions are baked in at the same
# pinned version as the bindings, and nothing is downloaded at run time.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY .ci/setup .ci/versions.env .ci/
COPY lib lib
COPY hooks hooks
COPY bench bench
COPY test test
RUN FEATHERMAN_CACHE=/opt/featherman bash .ci/setup extensions \
 && npx tsc -p tsconfig.json \
 && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HOME=/tmp \
    FEATHERMAN_EXTENSION_DIR=/opt/featherman/duckdb-extensions
WORKDIR /app
COPY --from=build /opt/featherman/duckdb-extensions /opt/featherman/duckdb-extensions
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist/lib dist/lib
COPY --from=build /src/dist/hooks dist/hooks
COPY package.json ./
COPY crds crds
# A numeric non-root user, so `runAsNonRoot` can be verified by the kubelet. The root filesystem
# can be read-only: DuckDB spills and writes scratch files only under /tmp (an emptyDir in pods).
USER 65532:65532
EXPOSE 8080 8443
ENTRYPOINT ["node", "/app/dist/lib/cli.js"]
CMD ["serve", "--port", "8080"]
