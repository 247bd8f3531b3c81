package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// drainableHealth is grpc-go's health server whose Watch streams end when stop closes.
// GracefulStop waits for every open RPC, and health watchers (Envoy, Kubernetes gRPC probes)
// keep theirs open forever: without this, every shutdown would run into drain_timeout.
type drainableHealth struct {
	*health.Server
	stop <-chan struct{}
}

func (h drainableHealth) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return h.Server.Watch(req, ctxStream{stream, ctx})
}

type ctxStream struct {
	grpc.ServerStreamingServer[healthpb.HealthCheckResponse]
	ctx context.Context
}

func (s ctxStream) Context() context.Context { return s.ctx }
