# trustgate: build with the full Node image, run on distroless (no shell, no package manager),
# as the nonroot user, on a read-only root filesystem (spool and certificates are volumes).
# Base images are pinned by version; pin them by digest in your registry mirror.

FROM node:24.21.0-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# npm ci's postinstall applies patches/ to cel-js (trustgate refuses to start without them)
COPY patches ./patches
# install scripts are needed for the pinned node runtime package and the patches, at build time only
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY schema ./schema
RUN npm run build && npm prune --omit=dev

FROM gcr.io/distroless/nodejs24-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="trustgate" \
      org.opencontainers.image.description="Kubernetes admission webhook for software-supply-chain policy" \
      org.opencontainers.image.source="https://github.com/trustgate/trustgate" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
# package-lock.json is the source of truth for SBOM tools that scan the image
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/schema ./schema
COPY policies ./policies
USER 65532:65532
# the rendered Deployment sets these too (src/kube/manifests.ts says why); here for a plain `docker run`
ENV NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=384" MALLOC_ARENA_MAX=1
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli.js"]
CMD ["serve", "--policies", "/app/policies", "--tls-cert", "/certs/tls.crt", "--tls-key", "/certs/tls.key", "--audit-spool", "/spool", "--in-cluster"]
