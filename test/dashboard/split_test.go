package dashboard_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDashboardSplit: a function whose dependency splits invocations
// 90/10 is drawn with one edge per target, each titled with its share, and
// its line in the function's box lists every target's share; clicking the
// function explains each target.
func TestDashboardSplit(t *testing.T) {
	chromium(t)
	cp := startDev(t)
	ddi(t, "--control-plane", cp, "provider", "add", "greeter-v1", "--type", "http", "--version", "1.0.0", "--url", "http://127.0.0.1:9001")
	ddi(t, "--control-plane", cp, "provider", "add", "greeter-v2", "--type", "http", "--version", "2.0.0", "--url", "http://127.0.0.1:9002")
	start(t, "ddi run canary", "--control-plane", cp, "run", "--name", "canary",
		"--dep", "greeter=90%greeter-v1,10%greeter-v2", "--", "sleep", "600")

	ctx := browser(t)
	run(t, ctx, "open the dashboard", chromedp.Navigate(cp+"/dashboard/"))
	waitJS(t, ctx, "the split's label", node("f:default/canary")+
		`&& `+node("f:default/canary")+`.textContent.includes('greeter → default/greeter-v1 90% · default/greeter-v2 10%')`, 20*time.Second)
	waitJS(t, ctx, "one edge per target, titled with its share",
		`[...document.querySelectorAll('path.edge title')].filter(e => e.textContent.startsWith('default/canary: greeter=')).map(e => e.textContent).sort().join('|') === `+
			`'default/canary: greeter=90%greeter-v1,10%greeter-v2 → default/greeter-v1 (90% of invocations)|default/canary: greeter=90%greeter-v1,10%greeter-v2 → default/greeter-v2 (10% of invocations)'`, 5*time.Second)
	run(t, ctx, "click canary", chromedp.Click(chromedp.CSS(`[data-k="f:default/canary"] rect.box`)))
	waitJS(t, ctx, "each target explained", `document.querySelector('#explanations') && `+
		`document.querySelector('#explanations').textContent.includes('splits invocations: primary default/greeter-v1') && `+
		`document.querySelector('#explanations').textContent.includes('weight 10%, share 10%') && `+
		`document.querySelector('#explanations').textContent.includes('chose default/greeter-v2')`, 5*time.Second)
}
