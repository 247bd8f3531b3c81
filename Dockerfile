# syntax=docker/dockerfile:1
# jwtauthz image: a static binary on distroless, running as non-root, no shell.
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) -t jwtauthz .
# envoy/test (make deploy-test) checks the properties below; CI cannot run docker build.

FROM --platform=$BUILDPLATFORM golang:1.26-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/jwtauthz ./cmd/jwtauthz

FROM gcr.io/distroless/static-debian13:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="jwtauthz" \
      org.opencontainers.image.description="Envoy ext_authz service that verifies bearer JWTs against cached JWKS" \
      org.opencontainers.image.source="https://github.com/jwtauthz/jwtauthz" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/jwtauthz /jwtauthz
USER nonroot:nonroot
# 9001 ext_authz gRPC, 9002 HTTP forward-auth, 9003 admin (/healthz, /readyz, /metrics)
EXPOSE 9001 9002 9003
# Healthy once /readyz answers 200, i.e. every provider has keys. Containers started as
# `jwtauthz issuer` run no admin listener: docker-compose.yaml disables the check for them.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/jwtauthz", "healthcheck"]
ENTRYPOINT ["/jwtauthz"]
CMD ["serve", "--config", "/etc/jwtauthz/jwtauthz.yaml"]
