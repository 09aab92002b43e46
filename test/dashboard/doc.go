// Package dashboard tests the control plane's dependency graph page in a
// real browser: headless Chromium driven with chromedp against the real
// ddi binary (`ddi dev`, `ddi run`). Its tests skip, saying so, only where
// no Chromium is installed. It holds no product code.
package dashboard
