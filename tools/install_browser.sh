#!/usr/bin/env bash
# Debian's chromium + chromium-driver for the browser test (tests/test_browser.py).
# Part of the README's test set-up; it never fails it: where the browser cannot be installed
# (not root, no apt-get, no network to the Debian mirror) the browser test is skipped with a reason.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
      || echo "install_browser: apt-get could not install chromium; the browser test will be skipped" >&2
  fi
else
  echo "install_browser: not root or no apt-get; the browser test runs only if chromium and chromedriver are on PATH" >&2
fi
exit 0
