package wellknown_test

import (
	"net"
	"strconv"
	"testing"

	"ddi.dev/ddi/sdk/wellknown"
)

func TestCanonicalType(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "postgres", want: "postgresql"},
		{in: "pg", want: "postgresql"},
		{in: " PostgreSQL ", want: "postgresql"},
		{in: "mongo", want: "mongodb"},
		{in: "rabbitmq", want: "amqp"},
		{in: "Redis", want: "redis"},
		{in: "http", want: "http"},
		{in: "", want: ""},
	}
	for _, tt := range tests {
		if got := wellknown.CanonicalType(tt.in); got != tt.want {
			t.Errorf("CanonicalType(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDefaultPort(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{in: "postgresql", want: "5432"},
		{in: "postgres", want: "5432"},
		{in: "pg", want: "5432"},
		{in: "mysql", want: "3306"},
		{in: "mariadb", want: "3306"},
		{in: "redis", want: "6379"},
		{in: "rediss", want: "6380"},
		{in: "mongodb", want: "27017"},
		{in: "mongo", want: "27017"},
		{in: "nats", want: "4222"},
		{in: "amqp", want: "5672"},
		{in: "rabbitmq", want: "5672"},
		{in: "amqps", want: "5671"},
		{in: "kafka", want: "9092"},
		{in: "http", want: "80"},
		{in: "ws", want: "80"},
		{in: "https", want: "443"},
		{in: "wss", want: "443"},
		{in: "grpc", want: "443"},
		{in: "HTTP", want: "80"},
		{in: "s3", want: ""},
		{in: "", want: ""},
	}
	for _, tt := range tests {
		if got := wellknown.DefaultPort(tt.in); got != tt.want {
			t.Errorf("DefaultPort(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSidecarListenUsesSidecarPort(t *testing.T) {
	host, port, err := net.SplitHostPort(wellknown.SidecarListen)
	if err != nil || host != "127.0.0.1" || port != strconv.Itoa(wellknown.SidecarPort) {
		t.Errorf("SidecarListen = %q, want 127.0.0.1:%d", wellknown.SidecarListen, wellknown.SidecarPort)
	}
}
