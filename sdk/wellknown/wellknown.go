package wellknown

import "strings"

// SidecarPort is the port the sidecar listens on in a pod unless told
// otherwise.
const SidecarPort = 7471

// SidecarListen is the sidecar's default listen address: loopback only, on
// SidecarPort.
const SidecarListen = "127.0.0.1:7471"

// typeAliases maps the usual aliases of a binding type to its canonical
// name.
var typeAliases = map[string]string{
	"postgres": "postgresql",
	"pg":       "postgresql",
	"mongo":    "mongodb",
	"rabbitmq": "amqp",
}

// CanonicalType returns the name the Service Binding convention uses for a
// binding type: "postgres" and "pg" become "postgresql", "mongo" becomes
// "mongodb", "rabbitmq" becomes "amqp". Other types are returned trimmed
// and lower-cased.
func CanonicalType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	if c, ok := typeAliases[t]; ok {
		return c
	}
	return t
}

// ports are the conventional ports by canonical type or URL scheme.
var ports = map[string]string{
	"http":       "80",
	"ws":         "80",
	"https":      "443",
	"wss":        "443",
	"grpc":       "443",
	"postgresql": "5432",
	"mysql":      "3306",
	"mariadb":    "3306",
	"redis":      "6379",
	"rediss":     "6380",
	"mongodb":    "27017",
	"nats":       "4222",
	"amqp":       "5672",
	"amqps":      "5671",
	"kafka":      "9092",
}

// DefaultPort returns the conventional port of a binding type or URL scheme
// (aliases included: "postgres" and "pg" give 5432), or "" when there is
// none.
func DefaultPort(typeOrScheme string) string {
	return ports[CanonicalType(typeOrScheme)]
}
