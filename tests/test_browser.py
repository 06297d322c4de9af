"""The web page in a real browser: headless Chromium uploads a clip to a running server and shows the phones."""

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from .conftest import speechlike

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver); .ci/run installs them",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tiny_model_dir):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "unispeech", "serve", "--model", str(tiny_model_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    import urllib.request

    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.25)
    else:
        proc.kill()
        pytest.fail(f"server did not start: {proc.stdout.read().decode()[-2000:]}")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_upload_and_see_phones(server, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = tmp_path / "clip.wav"
    sf.write(clip, speechlike(1.5), 16000)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    try:
        driver.get(server)
        WebDriverWait(driver, 20).until(lambda d: "model:" in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys(str(clip))
        driver.find_element(By.ID, "text").send_keys("Салам")
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text.startswith(("Done", "Error")))
        status = driver.find_element(By.ID, "status").text
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "browser.png"))
        assert status.startswith("Done"), status
        shown = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#phones span.phone b")]
        result = json.loads(driver.find_element(By.ID, "json").text)
        assert shown and shown == result["phones"]
        assert driver.find_elements(By.CSS_SELECTOR, "#diff span")  # the comparison view is filled in
        driver.find_element(By.ID, "scorebtn").click()  # the same clip and sentence, scored
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text.startswith(("Done", "Error")))
        assert "pronunciation score" in driver.find_element(By.ID, "status").text
        words = driver.find_elements(By.CSS_SELECTOR, "#words div.word")
        assert [w.find_element(By.TAG_NAME, "b").text for w in words] == ["Салам"]
        assert all(w.get_attribute("class").split()[1] in ("good", "fair", "poor") for w in words)
        assert driver.find_elements(By.CSS_SELECTOR, "#words div.word span.phone")
        driver.save_screenshot(str(ARTIFACTS / "browser-score.png"))
        bad = tmp_path / "notes.wav"
        bad.write_text("not audio\n" * 50)
        driver.find_element(By.ID, "file").send_keys(str(bad))
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text.startswith("Error"))
        assert "not a readable audio file" in driver.find_element(By.ID, "status").text
        assert not driver.find_elements(By.CSS_SELECTOR, "#phones span.phone")  # the old result is gone
        assert (
            driver.find_element(By.ID, "json").text == ""
            and not driver.find_element(By.ID, "comparison").is_displayed()
        )
    finally:
        driver.quit()
