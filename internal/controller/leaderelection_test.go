package controller

import (
	"strings"
	"testing"
	"time"
)

func TestValidateLeaderElection(t *testing.T) {
	tests := []struct {
		name                string
		off                 bool
		lease, renew, retry time.Duration
		wantErr             string // "" means valid
	}{
		{name: "defaults", lease: DefaultLeaseDuration, renew: DefaultRenewDeadline, retry: DefaultRetryPeriod},
		{name: "short, for tests", lease: 8 * time.Second, renew: 6 * time.Second, retry: time.Second},
		{name: "zero retry", lease: 15 * time.Second, renew: 10 * time.Second, wantErr: "must all be positive"},
		{name: "lease not longer than renew", lease: 10 * time.Second, renew: 10 * time.Second, retry: 2 * time.Second, wantErr: "--leader-elect-lease-duration 10s must be longer than --leader-elect-renew-deadline 10s"},
		{name: "renew within the retry's jitter", lease: 15 * time.Second, renew: 2 * time.Second, retry: 2 * time.Second, wantErr: "--leader-elect-renew-deadline 2s must be longer than 1.2 times --leader-elect-retry-period 2s"},
		{name: "no leader election, timings unused", off: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := DefaultOptions()
			o.LeaderElection = !tt.off
			o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = tt.lease, tt.renew, tt.retry
			err := o.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
