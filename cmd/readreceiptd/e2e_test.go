package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/readreceipt/readreceipt"
)

// e2eWait bounds every wait for something a person would see.
const e2eWait = 10 * time.Second

// findChromium returns the browser the end-to-end test drives, or skips the
// test when the machine has none (CI installs Debian's chromium).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium, chromium-browser or google-chrome on PATH: the end-to-end test of the demo page needs one (apt-get install chromium)")
	return ""
}

// e2eTab is one browser tab of the test, signed in as one user.
type e2eTab struct {
	t     *testing.T
	name  string
	ctx   context.Context
	shots string

	mu       sync.Mutex
	problems []string
}

// newE2ETab opens a tab in the browser of parent and records the errors and
// exceptions its page writes to the console.
func newE2ETab(t *testing.T, parent context.Context, name, shots string) *e2eTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	tab := &e2eTab{t: t, name: name, ctx: ctx, shots: shots}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				tab.mu.Lock()
				tab.problems = append(tab.problems, m.String())
				tab.mu.Unlock()
			}
		}
	}()
	return tab
}

// do runs actions in the tab, bringing it to the front first as a person
// switching tabs would, within e2eWait. On failure it saves a screenshot and
// reports what the page shows in its error banner.
func (tab *e2eTab) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, e2eWait)
	defer cancel()
	front := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.BringToFront, cdp.Empty{})
		return err
	})
	if err := chromedp.Do(ctx, append([]chromedp.Action[chromedp.Void]{front}, actions...)...); err != nil {
		tab.fail(step, err)
	}
}

// e2eEval evaluates a JavaScript expression in the tab.
func e2eEval[T any](tab *e2eTab, step, expr string) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, e2eWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tab.fail(step, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it holds, for at most e2eWait.
func (tab *e2eTab) waitFor(step, predicate string) {
	tab.t.Helper()
	tab.do(step, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(e2eWait)))
}

func (tab *e2eTab) fail(step string, err error) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, 5*time.Second)
	defer cancel()
	banner, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('toasts').innerText`))
	if png, serr := chromedp.Run(ctx, chromedp.CaptureScreenshot()); serr == nil {
		os.WriteFile(filepath.Join(tab.shots, "FAILED-"+tab.name+".png"), png, 0o644)
	}
	tab.t.Fatalf("%s (%s's tab): %v\npage banner: %q\nconsole: %q", step, tab.name, err, banner, tab.consoleProblems())
}

// shot saves a screenshot of the tab's viewport as name.png.
func (tab *e2eTab) shot(name string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, e2eWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tab.fail("screenshot "+name, err)
	}
	if err := os.WriteFile(filepath.Join(tab.shots, name+".png"), png, 0o644); err != nil {
		tab.t.Fatal(err)
	}
}

func (tab *e2eTab) consoleProblems() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return slices.Clone(tab.problems)
}

// noErrors fails the test if the page shows an error banner or wrote an
// error to its console.
func (tab *e2eTab) noErrors(step string) {
	tab.t.Helper()
	if banner := e2eEval[string](tab, step, `document.getElementById('toasts').innerText`); banner != "" {
		tab.t.Fatalf("%s (%s's tab): the page shows an error: %q", step, tab.name, banner)
	}
	if p := tab.consoleProblems(); len(p) > 0 {
		tab.t.Fatalf("%s (%s's tab): console errors: %q", step, tab.name, p)
	}
}

// noErrorsBut is noErrors, allowing banners that contain allowed.
func (tab *e2eTab) noErrorsBut(step, allowed string) {
	tab.t.Helper()
	banner := e2eEval[string](tab, step, `document.getElementById('toasts').innerText`)
	for _, line := range strings.Split(banner, "\n") {
		if line = strings.TrimSpace(line); line != "" && line != "✕" && !strings.Contains(line, allowed) {
			tab.t.Fatalf("%s (%s's tab): the page shows an error: %q", step, tab.name, banner)
		}
	}
	if p := tab.consoleProblems(); len(p) > 0 {
		tab.t.Fatalf("%s (%s's tab): console errors: %q", step, tab.name, p)
	}
}

// signIn picks user on the page and waits for the chat and its live event
// connection.
func (tab *e2eTab) signIn(user string) {
	tab.t.Helper()
	tab.do("pick "+user,
		chromedp.WaitVisible(chromedp.CSS(`#users button[data-user="`+user+`"]`)),
		chromedp.Click(chromedp.CSS(`#users button[data-user="`+user+`"]`)),
		chromedp.WaitVisible(chromedp.ID("composer")),
	)
	tab.waitFor(user+" is signed in and live", `document.querySelector('#users button[aria-pressed="true"]')?.dataset.user === `+e2eJSString(user)+
		` && document.getElementById('conn').dataset.state === 'live'`)
}

func e2eJSString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// e2eMsgJS is a JavaScript expression for the list item of the message whose
// text is text, or undefined.
func e2eMsgJS(text string) string {
	return `[...document.querySelectorAll('#messages li.msg')].find((li) => li.querySelector('.text').textContent === ` + e2eJSString(text) + `)`
}

// The whole flow of the demo page, as people would go through it in a real
// browser: alice asks for a receipt, bob and then carol read the message
// (carol on a phone-sized screen), alice's badge follows live, and alice
// pages through who has and has not read it.
func TestE2EDemoPage(t *testing.T) {
	chromium := findChromium(t)
	// failSend makes POST /demo/messages fail, as a server in trouble would.
	var failSend atomic.Bool
	base, _ := startTestServer(t, demoLogs(t), withMiddleware(func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failSend.Load() && r.Method == "POST" && r.URL.Path == "/demo/messages" {
				writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: readreceipt.CodeInternal, Message: "readreceiptd: the store is unavailable"})
				return
			}
			h.ServeHTTP(w, r)
		})
	}))

	shots := os.Getenv("READRECEIPTD_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 760),
	)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	// The browser lives as long as the context of its first run, so that
	// context has no timeout; the start is bounded here instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(browser) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", chromium, err)
		}
	case <-time.After(60 * time.Second):
		cancelBrowser()
		t.Fatalf("%s did not start within 60s", chromium)
	}

	const text = "Lunch at noon? Reply when you have read this."
	alice := newE2ETab(t, browser, "alice", shots)
	alice.do("open the page",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#users button[data-user="frank"]`)),
	)
	alice.shot("00-landing")
	alice.signIn("alice")
	// The page's receipts go through @readreceipt/client, the copy served
	// beside it.
	if !e2eEval[bool](alice, "the client is loaded", `performance.getEntriesByType('resource').some((e) => new URL(e.name).pathname === '/web/readreceipt-client.js')`) {
		t.Fatal("the demo page did not load /web/readreceipt-client.js")
	}
	// Marks this page load: a reload would lose it.
	e2eEval[chromedp.Void](alice, "mark the page", `window.e2eSamePage = true`)
	alice.shot("01-alice-signed-in")

	// Alice sends a message that asks for a receipt (the box is checked by
	// default) and sees "0 read" on it.
	if !e2eEval[bool](alice, "receipt box", `document.getElementById('need-receipt').checked`) {
		t.Fatal(`"Request read receipt" is not checked by default`)
	}
	alice.do("send",
		chromedp.SendKeys(chromedp.ID("text"), text),
		chromedp.Click(chromedp.ID("send")),
	)
	alice.waitFor("badge 0 read", e2eMsgJS(text)+`?.querySelector('.badge')?.textContent === '0 read'`)
	alice.noErrors("send")
	alice.shot("02-alice-sent-0-read")

	// Bob, in another tab, sees the message; shown on his screen, it is
	// reported read. He gets no badge on alice's message.
	other := newE2ETab(t, browser, "bob", shots)
	other.do("open the page", chromedp.Navigate(base+"/"))
	other.signIn("bob")
	other.waitFor("bob sees the message and reports it", e2eMsgJS(text)+`?.querySelector('.note')?.textContent === 'read receipt sent'`)
	if n := e2eEval[int](other, "bob's badges", `document.querySelectorAll('#messages .badge').length`); n != 0 {
		t.Fatalf("bob sees %d read badges on others' messages", n)
	}
	other.noErrors("bob reads")
	other.shot("03-bob-read-it")

	// Alice's badge turns to "1 read" from the live event, without a reload.
	alice.waitFor("badge 1 read", e2eMsgJS(text)+`?.querySelector('.badge')?.textContent === '1 read'`)
	if !e2eEval[bool](alice, "same page", `window.e2eSamePage === true`) {
		t.Fatal("alice's page was reloaded")
	}
	alice.shot("04-alice-sees-1-read")

	// A second message reaches bob's open page as it is sent, and is
	// reported read there.
	const text2 = "Second one: did the first arrive?"
	alice.do("send a second message",
		chromedp.SendKeys(chromedp.ID("text"), text2),
		chromedp.Click(chromedp.ID("send")),
	)
	alice.waitFor("second badge 0 read", e2eMsgJS(text2)+`?.querySelector('.badge')?.textContent === '0 read'`)
	other.waitFor("bob gets the second message live", e2eMsgJS(text2)+`?.querySelector('.note')?.textContent === 'read receipt sent'`)
	if !e2eEval[bool](other, "same page", `document.querySelectorAll('#messages li.msg').length === 2 && performance.getEntriesByType('navigation').length === 1`) {
		t.Fatal("bob's page does not show both messages in the page it loaded")
	}
	other.noErrors("bob gets the second message")
	other.shot("05-bob-gets-second-message-live")
	alice.waitFor("second badge 1 read", e2eMsgJS(text2)+`?.querySelector('.badge')?.textContent === '1 read'`)

	// In bob's tab, now phone-sized, the user switches to carol, who reads
	// both.
	other.name = "carol"
	other.do("phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	other.signIn("carol")
	for _, m := range []string{text, text2} {
		other.waitFor("carol sees a message and reports it", e2eMsgJS(m)+`?.querySelector('.note')?.textContent === 'read receipt sent'`)
	}
	if n := e2eEval[int](other, "carol's view", `document.querySelectorAll('#messages li.msg').length`); n != 2 {
		t.Fatalf("carol sees %d messages, want 2", n)
	}
	width := e2eEval[[]int](other, "overflow", `[document.documentElement.scrollWidth, window.innerWidth]`)
	if len(width) != 2 || width[1] != 390 || width[0] > width[1] {
		t.Fatalf("at 390x844 the page is %v wide (scrollWidth, innerWidth): it overflows horizontally", width)
	}
	other.noErrors("carol reads")
	other.shot("06-carol-on-a-phone-read-both")

	for _, m := range []string{text, text2} {
		alice.waitFor("badge 2 read", e2eMsgJS(m)+`?.querySelector('.badge')?.textContent === '2 read'`)
	}
	alice.shot("07-alice-sees-2-read")

	// Alice opens the lists of the first message: Read holds bob and carol,
	// Unread holds the three others, each page following the last, each
	// member once.
	first := e2eEval[string](alice, "first message ID", e2eMsgJS(text)+`.dataset.id`)
	alice.do("open the lists",
		chromedp.Click(chromedp.CSS(`#messages li.msg.mine[data-id="`+first+`"] .badge`)),
		chromedp.WaitVisible(chromedp.ID("sheet")),
	)
	read, pages := alice.walkMembers(0, "")
	if !slices.Equal(read, []string{"bob", "carol"}) {
		t.Fatalf("Read tab lists %q, want bob and carol", read)
	}
	if tab := e2eEval[string](alice, "read tab label", `document.getElementById('tab-read').textContent`); tab != "Read (2)" {
		t.Fatalf("Read tab label %q", tab)
	}
	t.Logf("Read list: %q in %d page(s)", read, pages)
	alice.shot("08-alice-read-list")

	alice.do("Unread tab", chromedp.Click(chromedp.ID("tab-unread")))
	unread, pages := alice.walkMembers(1, "09-alice-unread-first-page")
	if !slices.Equal(unread, []string{"dave", "erin", "frank"}) {
		t.Fatalf("Unread tab lists %q, want dave, erin and frank once each", unread)
	}
	if pages < 2 {
		t.Fatalf("Unread list came in %d page(s): paging was not exercised", pages)
	}
	t.Logf("Unread list: %q in %d pages", unread, pages)
	alice.noErrors("member lists")
	alice.shot("10-alice-unread-list-complete")

	// The same lists on a phone-sized screen fit it too.
	alice.do("phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	width = e2eEval[[]int](alice, "overflow", `[document.documentElement.scrollWidth, window.innerWidth]`)
	if width[0] > width[1] {
		t.Fatalf("member panel at 390x844 is %v wide: it overflows", width)
	}
	alice.shot("11-alice-unread-list-on-a-phone")

	// The three others read it too, one after the other in the phone tab;
	// alice's badge says "All read", and the open panel's counts follow.
	for _, u := range []string{"dave", "erin", "frank"} {
		other.name = u
		other.signIn(u)
		for _, m := range []string{text, text2} {
			other.waitFor(u+" reports a message read", e2eMsgJS(m)+`?.querySelector('.note')?.textContent === 'read receipt sent'`)
		}
	}
	other.noErrors("everyone read")
	for _, m := range []string{text, text2} {
		alice.waitFor("badge All read", e2eMsgJS(m)+`?.querySelector('.badge')?.textContent === 'All read'`)
	}
	alice.waitFor("live counts in the panel", `document.getElementById('tab-unread').textContent === 'Unread (0)'`)
	alice.do("refresh the lists", chromedp.Click(chromedp.ID("sheet-refresh")))
	alice.waitFor("nobody left unread", `document.getElementById('member-list').dataset.state === 'done' &&
		document.querySelectorAll('#member-list li').length === 0 &&
		document.getElementById('member-empty').textContent === 'Everyone has read it.'`)
	alice.noErrors("all read")
	alice.shot("12-alice-all-read")

	// A failure is shown, with its code, and the text is kept to try again.
	failSend.Store(true)
	alice.do("close the panel and send again",
		chromedp.Click(chromedp.ID("sheet-close")),
		chromedp.SendKeys(chromedp.ID("text"), "This one will not go through."),
		chromedp.Click(chromedp.ID("send")),
	)
	alice.waitFor("error banner", `document.getElementById('toasts').innerText.includes('code 10002')`)
	if v := e2eEval[string](alice, "kept text", `document.getElementById('text').value`); v != "This one will not go through." {
		t.Fatalf("after a failed send the composer holds %q", v)
	}
	alice.shot("13-alice-send-fails")
}

// walkMembers reads the member list of the open panel for filter (0 read,
// 1 unread), pressing "Load more" until the list is complete. It returns the
// members in order and the number of pages.
// If firstShot is not empty, the first page is saved as that screenshot.
func (tab *e2eTab) walkMembers(filter int, firstShot string) ([]string, int) {
	tab.t.Helper()
	settled := fmt.Sprintf(`(() => { const ml = document.getElementById('member-list');
		return ml.dataset.filter === '%d' && (ml.dataset.state === 'more' || ml.dataset.state === 'done'); })()`, filter)
	items := `[...document.querySelectorAll('#member-list li')].map((li) => li.textContent)`
	tab.waitFor("first page", settled)
	if firstShot != "" {
		tab.shot(firstShot)
	}
	pages := 1
	for {
		got := e2eEval[[]string](tab, "member list", items)
		state := e2eEval[string](tab, "member list state", `document.getElementById('member-list').dataset.state`)
		if state == "done" {
			if !e2eEval[bool](tab, "load more hidden", `document.getElementById('load-more').hidden`) {
				tab.t.Fatal(`"Load more" is still offered after the last page`)
			}
			return got, pages
		}
		if pages > 10 {
			tab.t.Fatalf("member list not complete after %d pages: %q", pages, got)
		}
		tab.do("load more", chromedp.Click(chromedp.ID("load-more")))
		tab.waitFor("next page", fmt.Sprintf(`%s && (document.querySelectorAll('#member-list li').length > %d || document.getElementById('member-list').dataset.state === 'done')`, settled, len(got)))
		pages++
	}
}

// e2eConns is a listener that remembers its connections, so that a test can
// cut them all at once, as a network drop would.
type e2eConns struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *e2eConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
	}
	return c, err
}

// cut closes every connection accepted so far.
func (l *e2eConns) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}

// startE2EBrowser starts headless chromium for a test, as TestE2EDemoPage
// does, and returns its browser context.
func startE2EBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 760),
	)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(browser) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", chromium, err)
		}
	case <-time.After(60 * time.Second):
		cancelBrowser()
		t.Fatalf("%s did not start within 60s", chromium)
	}
	return browser
}

// The demo page, whose receipts go through @readreceipt/client, loses its
// connections; a receipt recorded while it is away is not sent to it as an
// event, yet once the client has reconnected by itself the page refreshes
// its counts and shows it, without a reload.
func TestE2EDemoPageReconnects(t *testing.T) {
	chromium := findChromium(t)
	var offline atomic.Bool
	var conns *e2eConns
	base, s := startTestServer(t, demoLogs(t),
		withListener(func(l net.Listener) net.Listener {
			conns = &e2eConns{Listener: l, conns: map[net.Conn]struct{}{}}
			return conns
		}),
		withMiddleware(func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if offline.Load() && (r.URL.Path == "/v1/events" || r.URL.Path == "/demo/stream") {
					writeError(w, &apiError{Status: http.StatusServiceUnavailable, Code: readreceipt.CodeClosed, Message: "readreceiptd: offline for the test"})
					return
				}
				h.ServeHTTP(w, r)
			})
		}))
	shots := os.Getenv("READRECEIPTD_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	browser := startE2EBrowser(t, chromium)

	const text = "Are you still there after the network drop?"
	alice := newE2ETab(t, browser, "alice", shots)
	alice.do("open the page", chromedp.Navigate(base+"/"))
	alice.signIn("alice")
	e2eEval[chromedp.Void](alice, "mark the page", `window.e2eSamePage = true`)
	alice.do("send",
		chromedp.SendKeys(chromedp.ID("text"), text),
		chromedp.Click(chromedp.ID("send")),
	)
	alice.waitFor("badge 0 read", e2eMsgJS(text)+`?.querySelector('.badge')?.textContent === '0 read'`)
	id := e2eEval[string](alice, "message ID", e2eMsgJS(text)+`.dataset.id`)

	// The network drops, and the sockets cannot come back for now.
	offline.Store(true)
	conns.cut()
	alice.waitFor("the page says it is reconnecting", `document.getElementById('conn').dataset.state === 'connecting' &&
		document.getElementById('toasts').innerText.includes('connection lost; reconnecting')`)
	alice.shot("reconnect-01-alice-offline")

	// Bob reads it meanwhile: the event has no connection of alice's to go to.
	body := `{"messageList":[{"ID":` + e2eJSString(id) + `,"conversationType":"GROUP","to":"demo","from":"alice"}]}`
	req, err := http.NewRequest("POST", base+"/v1/receipts", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.mintToken("bob", time.Hour))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Code int `json:"code"`
		Data struct {
			MessageList []receiptResultJSON `json:"messageList"`
		} `json:"data"`
	}
	err = json.NewDecoder(res.Body).Decode(&answer)
	res.Body.Close()
	if err != nil || answer.Code != 0 || len(answer.Data.MessageList) != 1 || !answer.Data.MessageList[0].Recorded {
		t.Fatalf("bob's receipt: %v %+v", err, answer)
	}
	if got := e2eEval[string](alice, "badge while offline", e2eMsgJS(text)+`.querySelector('.badge').textContent`); got != "0 read" {
		t.Fatalf("while offline the badge says %q", got)
	}

	// The sockets may come back: the client reconnects by itself, and the
	// page refreshes the counts it may have missed.
	offline.Store(false)
	alice.waitFor("live again", `document.getElementById('conn').dataset.state === 'live'`)
	alice.waitFor("badge 1 read after the reconnect", e2eMsgJS(text)+`?.querySelector('.badge')?.textContent === '1 read'`)
	if !e2eEval[bool](alice, "same page", `window.e2eSamePage === true`) {
		t.Fatal("alice's page was reloaded")
	}
	alice.shot("reconnect-02-alice-back-1-read")
}

// The demo page's client, web/readreceipt-client.js, is a copy of
// clients/js/index.js (go:embed cannot reach outside this package): the two
// must not drift apart. clients/js/test/copy.test.js checks the same from
// the npm side.
func TestWebClientIsTheClientsCopy(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "clients", "js", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile(filepath.Join("web", "readreceipt-client.js"))
	if err != nil {
		t.Fatal(err)
	}
	if string(src) != string(copied) {
		t.Fatal("cmd/readreceiptd/web/readreceipt-client.js differs from clients/js/index.js: run cp clients/js/index.js cmd/readreceiptd/web/readreceipt-client.js")
	}
}

// e2eTownMsgJS is a JavaScript expression for the town hall's list item of
// the message whose text is text, or undefined.
func e2eTownMsgJS(text string) string {
	return `[...document.querySelectorAll('#town-messages li.msg')].find((li) => li.querySelector('.text').textContent === ` + e2eJSString(text) + `)`
}

// The million-member town hall, as a person uses it: alice opens it, the
// page shows the creation's progress while the demo chat keeps working,
// then she speaks there, turns the crowd's rate up, watches "N read" count
// up live, and pages through who has read it with "Load more".
func TestE2ETownHall(t *testing.T) {
	if raceEnabled {
		// Building a real million under the race detector takes minutes
		// of CPU; TestDemoTownHall and its siblings run the same code
		// under -race on smaller town halls.
		t.Skip("a million-member town hall under the race detector: covered by TestDemoTownHall")
	}
	chromium := findChromium(t)
	// The engine's invariant check would walk the million members' state
	// at the end; the Go tests check it on a smaller town hall.
	base, _ := startTestServer(t, demoLogs(t), withoutCheck())
	shots := os.Getenv("READRECEIPTD_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	browser := startE2EBrowser(t, chromium)
	alice := newE2ETab(t, browser, "alice", shots)
	alice.do("open the page", chromedp.Navigate(base+"/"))
	alice.signIn("alice")
	alice.waitFor("the town hall is offered", `!document.getElementById('town').hidden && !document.getElementById('town-open').hidden &&
		document.getElementById('town-open').textContent.includes('1,000,000 members')`)
	alice.shot("townhall-01-offered")

	// Opening it starts the creation; the page shows its progress, and the
	// chat answers meanwhile.
	start := time.Now()
	alice.do("open the town hall", chromedp.Click(chromedp.ID("town-open")))
	alice.waitFor("progress shown", `document.getElementById('town').dataset.state === 'ready' ||
		(document.getElementById('town').dataset.state === 'creating' && !document.getElementById('town-progress').hidden)`)
	const chatText = "Is the chat still answering while the town hall is built?"
	alice.do("send in the chat", chromedp.SendKeys(chromedp.ID("text"), chatText), chromedp.Click(chromedp.ID("send")))
	alice.waitFor("chat badge 0 read", e2eMsgJS(chatText)+`?.querySelector('.badge')?.textContent === '0 read'`)
	if e2eEval[string](alice, "town state", `document.getElementById('town').dataset.state`) == townCreating {
		alice.shot("townhall-02-creating-chat-answers")
	} else {
		t.Log("the town hall was ready before the chat's message was shown: no screenshot of the progress")
	}
	// The deadline only stops a hung run: a million is built in seconds
	// on an idle machine, and in minutes on a busy one.
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		st := e2eEval[string](alice, "town state", `document.getElementById('town').dataset.state`)
		if st == townReady {
			break
		}
		if st == townFailed || time.Now().After(deadline) {
			alice.fail("town hall ready", fmt.Errorf("state %q after %v", st, time.Since(start)))
		}
	}
	t.Logf("the page saw the town hall ready %v after opening it: %s", time.Since(start),
		e2eEval[string](alice, "town size", `document.getElementById('town-size').textContent`))
	alice.noErrors("town hall created")
	alice.shot("townhall-03-ready")

	// Alice speaks; the crowd reads at 300 a second.
	const text = "Welcome to the town hall, all million of you!"
	e2eEval[bool](alice, "crowd rate", `(() => { const r = document.getElementById('town-rate');
		r.value = 300; r.dispatchEvent(new Event('input')); r.dispatchEvent(new Event('change')); return true; })()`)
	alice.do("post to the town hall", chromedp.SendKeys(chromedp.ID("town-text"), text), chromedp.Click(chromedp.ID("town-send")))
	count := e2eTownMsgJS(text) + `?.querySelector('.badge')?.textContent`
	readJS := `parseInt((` + count + ` || '').replace(/,/g, ''), 10)`
	alice.waitFor("a count on the town hall message", readJS+` >= 0`)
	first := e2eEval[int](alice, "first count", readJS)
	alice.shot("townhall-04-posted")
	alice.waitFor("the count moves", fmt.Sprintf(`%s >= %d`, readJS, first+300))
	moved := e2eEval[int](alice, "count", readJS)
	alice.waitFor("the count keeps moving", fmt.Sprintf(`%s >= %d`, readJS, moved+300))
	alice.shot("townhall-05-count-moving")
	t.Logf("town hall badge: %d read, then %q", first, e2eEval[string](alice, "badge", count))

	// The Read list pages through the crowd with "Load more".
	id := e2eEval[string](alice, "town message ID", e2eTownMsgJS(text)+`.dataset.id`)
	alice.do("open the lists", chromedp.Click(chromedp.CSS(`#town-messages li.msg.mine[data-id="`+id+`"] .badge`)), chromedp.WaitVisible(chromedp.ID("sheet")))
	items := `[...document.querySelectorAll('#member-list li')].map((li) => li.textContent)`
	alice.waitFor("first page of readers", `document.getElementById('member-list').dataset.state === 'more' && document.querySelectorAll('#member-list li').length === 50`)
	for page := 2; page <= 3; page++ {
		alice.do("load more", chromedp.Click(chromedp.ID("load-more")))
		alice.waitFor("next page of readers", fmt.Sprintf(`document.getElementById('member-list').dataset.state === 'more' && document.querySelectorAll('#member-list li').length === %d`, 50*page))
	}
	got := e2eEval[[]string](alice, "read list", items)
	for i, u := range got {
		if u != townMember(i) {
			t.Fatalf("Read list item %d is %q, want %q (the crowd reads in order, each once)", i, u, townMember(i))
		}
	}
	if label := e2eEval[string](alice, "read tab", `document.getElementById('tab-read').textContent`); !strings.HasPrefix(label, "Read (") {
		t.Fatalf("Read tab label %q", label)
	}
	e2eEval[bool](alice, "scroll the list", `(() => { const ml = document.getElementById('member-list'); ml.scrollTop = ml.scrollHeight; return true; })()`)
	alice.shot("townhall-06-read-list-3-pages")
	alice.do("Unread tab", chromedp.Click(chromedp.ID("tab-unread")))
	alice.waitFor("first page of the unread", `document.getElementById('member-list').dataset.filter === '1' &&
		document.getElementById('member-list').dataset.state === 'more' && document.querySelectorAll('#member-list li').length === 50`)
	// A page that falls behind the crowd's events (a loaded machine) has its
	// event socket dropped by the server, by design, and reconnects by
	// itself: that notice is allowed, as long as the page is live again.
	alice.waitFor("live events", `document.getElementById('conn').dataset.state === 'live'`)
	alice.noErrorsBut("town hall lists", "connection lost; reconnecting")
	alice.shot("townhall-07-unread-list")
}

// The demo page's ticks and private receipts, as people would use them:
// bob turns private read receipts on and leaves; alice sends, and her
// message shows one grey tick; bob comes back and reads it, privately:
// alice's ticks turn to two grey (delivered) and her badge stays "0 read";
// carol reads it: the ticks turn blue, "1 read", and the Read list holds
// carol alone.
func TestE2EDemoPageTicksAndPrivacy(t *testing.T) {
	chromium := findChromium(t)
	base, _ := startTestServer(t, demoLogs(t))
	shots := os.Getenv("READRECEIPTD_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	browser := startE2EBrowser(t, chromium)
	const privacy = `document.getElementById('private-receipts')`

	other := newE2ETab(t, browser, "bob", shots)
	other.do("open the page", chromedp.Navigate(base+"/"))
	other.signIn("bob")
	other.waitFor("the switch is loaded, off", privacy+`.dataset.state === 'saved' && !`+privacy+`.checked`)
	other.do("turn private receipts on", chromedp.Click(chromedp.ID("private-receipts")))
	other.waitFor("private receipts saved", privacy+`.dataset.state === 'saved' && `+privacy+`.checked`)
	other.noErrors("bob turns private")
	other.shot("ticks-01-bob-private")
	other.do("bob leaves", chromedp.Navigate("about:blank"))

	const text = "Did this reach you?"
	alice := newE2ETab(t, browser, "alice", shots)
	alice.do("open the page", chromedp.Navigate(base+"/"))
	alice.signIn("alice")
	alice.waitFor("alice's switch is loaded, off", privacy+`.dataset.state === 'saved' && !`+privacy+`.checked`)
	e2eEval[chromedp.Void](alice, "mark the page", `window.e2eSamePage = true`)
	alice.do("send",
		chromedp.SendKeys(chromedp.ID("text"), text),
		chromedp.Click(chromedp.ID("send")),
	)
	ticks := e2eMsgJS(text) + `?.querySelector('.ticks')`
	badge := e2eMsgJS(text) + `?.querySelector('.badge')?.textContent`
	alice.waitFor("one grey tick, 0 read", ticks+`?.dataset.state === 'sent' && `+ticks+`.textContent === '\u2713' && `+badge+` === '0 read'`)
	alice.noErrors("send")
	alice.shot("ticks-02-alice-sent")

	// Bob is back: the page signs him in by itself, and he picks himself
	// all the same; his page reports the message delivered and, seen, read,
	// privately.
	other.do("bob comes back", chromedp.Navigate(base+"/"))
	other.signIn("bob")
	other.waitFor("bob's switch shows private", privacy+`.dataset.state === 'saved' && `+privacy+`.checked`)
	other.waitFor("bob reads it privately", e2eMsgJS(text)+`?.querySelector('.note')?.textContent === 'read privately'`)
	other.noErrors("bob reads privately")
	other.shot("ticks-03-bob-read-privately")
	alice.waitFor("two grey ticks", ticks+`?.dataset.state === 'delivered' && `+ticks+`.textContent === '\u2713\u2713'`)
	if got := e2eEval[string](alice, "badge after bob's private read", badge); got != "0 read" {
		t.Fatalf("after bob's private read alice's badge says %q", got)
	}
	alice.shot("ticks-04-alice-delivered")

	// Carol reads it, publicly: blue ticks, 1 read.
	other.name = "carol"
	other.signIn("carol")
	other.waitFor("carol reads it", e2eMsgJS(text)+`?.querySelector('.note')?.textContent === 'read receipt sent'`)
	alice.waitFor("blue ticks, 1 read", ticks+`?.dataset.state === 'read' && `+badge+` === '1 read'`)
	if !e2eEval[bool](alice, "same page", `window.e2eSamePage === true`) {
		t.Fatal("alice's page was reloaded")
	}
	alice.shot("ticks-05-alice-read")

	// The Read list, from the server, holds carol and not bob.
	id := e2eEval[string](alice, "message ID", e2eMsgJS(text)+`.dataset.id`)
	alice.do("open the lists",
		chromedp.Click(chromedp.CSS(`#messages li.msg.mine[data-id="`+id+`"] .badge`)),
		chromedp.WaitVisible(chromedp.ID("sheet")),
	)
	read, _ := alice.walkMembers(0, "")
	if !slices.Equal(read, []string{"carol"}) {
		t.Fatalf("Read tab lists %q, want carol alone (bob's read is private)", read)
	}
	alice.noErrors("read list")
	alice.shot("ticks-06-alice-read-list")
}
