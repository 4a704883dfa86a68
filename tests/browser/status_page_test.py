#!/usr/bin/python3
"""The status page in a real browser: headless Chromium (Debian's), driven
over the DevTools protocol on a pipe (--remote-debugging-pipe: fd 3 in, fd 4
out, one JSON message per NUL). It renders the worker table with a row per
worker; a worker killed meanwhile shows in the last exits without a reload;
a screenshot is written as a test artifact.

    status_page_test.py UFORK_BINARY SCREENSHOT_PNG
"""
import base64
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DEADLINE = 60.0


class Browser:
    def __init__(self, profile):
        self.to_browser_r, self.to_browser_w = os.pipe()
        self.from_browser_r, self.from_browser_w = os.pipe()
        binary = '/usr/lib/chromium/chromium' if os.path.exists('/usr/lib/chromium/chromium') else shutil.which('chromium')

        def fds():  # the protocol's pipe on fds 3 and 4 of the browser (through copies above them)
            import fcntl
            r = fcntl.fcntl(self.to_browser_r, fcntl.F_DUPFD, 100)
            w = fcntl.fcntl(self.from_browser_w, fcntl.F_DUPFD, 100)
            os.dup2(r, 3)
            os.dup2(w, 4)
        self.proc = subprocess.Popen(
            [binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
             '--remote-debugging-pipe', '--user-data-dir=' + profile, '--window-size=900,700', 'about:blank'],
            pass_fds=(3, 4), preexec_fn=fds,  # kept: the fds the browser's end is moved to
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(self.to_browser_r)
        os.close(self.from_browser_w)
        self.next_id = 0
        self.pending = b''
        self.session = None

    def call(self, method, **params):
        self.next_id += 1
        msg = {'id': self.next_id, 'method': method, 'params': params}
        if self.session and not method.startswith('Target.'):
            msg['sessionId'] = self.session
        os.write(self.to_browser_w, json.dumps(msg).encode() + b'\0')
        deadline = time.monotonic() + DEADLINE
        while True:
            while b'\0' in self.pending:
                raw, self.pending = self.pending.split(b'\0', 1)
                reply = json.loads(raw)
                if reply.get('id') == self.next_id:
                    if 'error' in reply:
                        raise RuntimeError('%s: %s' % (method, reply['error']))
                    return reply['result']
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.from_browser_r], [], [], max(left, 0))
            if not r:
                raise AssertionError('no answer to ' + method)
            data = os.read(self.from_browser_r, 1 << 20)
            if not data:
                raise AssertionError('the browser went away')
            self.pending += data

    def evaluate(self, expression):
        return self.call('Runtime.evaluate', expression=expression, returnByValue=True)['result'].get('value')

    def wait_for(self, expression, what):
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)  # the page polls once a second; this asks it
        raise AssertionError('the page never showed ' + what + '; body: ' + str(self.evaluate('document.body.innerText')))

    def close(self):
        try:
            self.call('Browser.close')
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main(ufork, screenshot):
    tmp = tempfile.mkdtemp(prefix='ufork-browser-')
    sock = os.path.join(tmp, 'ctl.sock')
    server = subprocess.Popen([ufork, 'hello', '--workers', '3', '--bind', '127.0.0.1:0', '--metrics', '127.0.0.1:0',
                               '--control', sock], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    browser = None
    try:
        url = None
        deadline = time.monotonic() + DEADLINE
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            m = re.search(r'status page on (http://127\.0\.0\.1:\d+/)', line)
            url = m and m.group(1)
        assert url, 'no status page address in the output'
        browser = Browser(os.path.join(tmp, 'profile'))
        page = next(t for t in browser.call('Target.getTargets')['targetInfos'] if t['type'] == 'page')
        browser.session = browser.call('Target.attachToTarget', targetId=page['targetId'], flatten=True)['sessionId']
        browser.call('Page.enable')
        browser.call('Page.navigate', url=url)
        browser.wait_for("document.querySelectorAll('#workers tr').length === 3", 'a row per worker')
        pid = browser.evaluate("document.querySelector('#workers tr').children[1].textContent")
        browser.wait_for("/pool PSS [0-9.]+ MiB, USS [0-9.]+ MiB/.test(document.getElementById('summary').textContent)",
                         "the pool's memory in the summary")
        browser.wait_for("/^[0-9.]+ MiB$/.test(document.querySelector('#workers tr').children[6].textContent)",
                         "a worker's PSS in its row")
        subprocess.run([ufork, 'ctl', '--socket', sock, 'kill', '0', 'KILL'], check=True, stdout=subprocess.DEVNULL)
        browser.wait_for("document.getElementById('exits').textContent.includes('pid %s gen 1 killed: killed by SIGKILL')"
                         % pid, "the kill in the last exits")
        browser.wait_for("[...document.querySelectorAll('#workers tr')].some(r => r.children[2].textContent === '2')",
                         "the successor (gen 2) in the table")
        shot = browser.call('Page.captureScreenshot', format='png')['data']
        with open(screenshot, 'wb') as f:
            f.write(base64.b64decode(shot))
        print('status page: 3 rows, the kill shown without a reload; screenshot', screenshot)
    finally:
        if browser:
            browser.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    assert server.returncode == 0, server.returncode


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
