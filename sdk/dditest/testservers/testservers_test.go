package testservers_test

import (
	"ddi.dev/ddi/sdk/dditest/testservers"
	"testing"
)

func TestStartAll(t *testing.T) {
	pg := testservers.StartPostgres(t)
	t.Log(pg.URL())
	r := testservers.StartRedis(t, "pw")
	t.Log(r.Addr)
	n := testservers.StartNATS(t, "u", "p")
	t.Log(n.URL)
	pg.Stop()
	pg.Start()
}
