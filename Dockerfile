# Vatio in a container: a static binary on distroless (no shell, no package
# manager; CA certificates for webhooks and SMTP included).
#   docker build -t vatio --build-arg VERSION=$(git describe --tags --always) .
#   docker run -d --name vatio -p 1883:1883 -p 5000:5000 -v vatio-data:/data \
#     -v "$PWD/config.yaml:/etc/vatio/config.yaml:ro" \
#     -e VATIO_ADMIN_PASSWORD='a long enough password' vatio
# A host directory as /data must belong to the image's user: chown 65532.
# Devices reach the broker from outside the container, so they need
# credentials (Access page, or POST /api/v1/devices): anonymous clients are
# accepted from the container's own loopback only.

FROM node:20-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
# What make assets does: ECharts from the npm registry, pinned by the lock,
# then every file served compressed beside itself (name.br, name.gz).
RUN npm ci --no-audit --no-fund --loglevel=error \
 && mkdir -p dashboard/assets/vendor \
 && cp node_modules/echarts/dist/echarts.min.js dashboard/assets/vendor/ \
 && cp node_modules/echarts/LICENSE dashboard/assets/vendor/echarts.LICENSE.txt \
 && cp node_modules/echarts/NOTICE dashboard/assets/vendor/echarts.NOTICE.txt
COPY internal/asset/precompress.mjs internal/asset/
COPY dashboard/assets/ dashboard/assets/
COPY api/openapi.json api/
RUN find dashboard/assets api/openapi.json -type f ! -name '*.br' ! -name '*.gz' ! -name '.*' \
      -exec node internal/asset/precompress.mjs {} +

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=assets /src/dashboard/assets/ dashboard/assets/
COPY --from=assets /src/api/openapi.json.br /src/api/openapi.json.gz api/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vatio ./cmd/vatio \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vatio /usr/local/bin/vatio
COPY --from=build --chown=nonroot:nonroot /out/data /data
ENV VATIO_DATA_DIR=/data
VOLUME ["/data"]
# ./config.yaml is read when it exists: mount one at /etc/vatio/config.yaml.
WORKDIR /etc/vatio
# MQTT, HTTP (HTTPS with tls.enabled), MQTTS.
EXPOSE 1883 5000 8883
# SIGTERM (docker stop) commits every acknowledged reading before exit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/vatio"]
