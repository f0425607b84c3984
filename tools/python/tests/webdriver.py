"""A small W3C WebDriver client (standard library only) for Debian's chromedriver
driving headless Chromium: enough to open pages, read and click elements, run a
script and take screenshots in the console's browser test. chromedriver is started
on an OS-chosen port and killed by its pid at the end."""
import base64
import json
import re
import subprocess
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class WebDriverError(RuntimeError):
    pass


class Browser:
    """One headless Chromium session. Use as a context manager."""

    def __init__(self, width=1280, height=1000, timeout=30.0):
        self.width, self.height, self.timeout = width, height, timeout
        self.driver = None
        self.base = None
        self.session = None

    def __enter__(self):
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, "--port=0"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        port = None
        deadline = time.time() + 30
        while time.time() < deadline and port is None:
            line = self.driver.stdout.readline()
            if not line:
                break
            m = re.search(r"started successfully on port (\d+)", line)
            if m:
                port = int(m.group(1))
        if port is None:
            self.driver.kill()
            raise WebDriverError("chromedriver did not say which port it listens on")
        self.base = f"http://127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         f"--window-size={self.width},{self.height}"]}}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]
        return self

    def __exit__(self, *exc):
        try:
            if self.session:
                self._call("DELETE", f"/session/{self.session}")
        except (WebDriverError, OSError):
            pass
        self.driver.kill()
        self.driver.wait(timeout=10)

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                return json.loads(res.read())["value"]
        except urllib.error.HTTPError as e:
            raise WebDriverError(f"{method} {path}: {e.read()[:500]!r}") from e

    def _s(self, path, body=None, method="POST"):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self._s("/url", {"url": url})

    def script(self, source, *args):
        """Runs `source` (a function body; `arguments` holds args) in the page."""
        return self._s("/execute/sync", {"script": source, "args": list(args)})

    def wait(self, source, *args, timeout=None, what="condition"):
        """Polls script `source` until it returns something truthy; returns it."""
        deadline = time.time() + (timeout or self.timeout)
        while time.time() < deadline:
            v = self.script(source, *args)
            if v:
                return v
            time.sleep(0.1)  # polling the page
        raise WebDriverError(f"timed out waiting for {what}")

    def click(self, css):
        el = self._s("/element", {"using": "css selector", "value": css})
        element_id = next(iter(el.values()))
        self._s(f"/element/{element_id}/click", {})

    def screenshot(self, path):
        png = base64.b64decode(self._s("/screenshot", method="GET"))
        with open(path, "wb") as f:
            f.write(png)
        return path
