"""The web page in a real browser: headless Chromium uploads a clip to a running server and shows the phones."""

import contextlib
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
EXAMPLE = Path(__file__).parents[1] / "examples" / "ky_example.flac"
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


@contextlib.contextmanager
def running_server(*model_args: str):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "unispeech", "serve", *model_args, "--port", str(port)],
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
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def server(tiny_model_dir):
    with running_server("--model", str(tiny_model_dir)) as url:
        yield url


def chromium(tmp_path, *more_flags: str):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        *more_flags,
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
    ARTIFACTS.mkdir(exist_ok=True)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))


def test_upload_and_see_phones(server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clip = tmp_path / "clip.wav"
    sf.write(clip, speechlike(1.5), 16000)
    driver = chromium(tmp_path)
    try:
        driver.get(server)
        WebDriverWait(driver, 20).until(lambda d: "model:" in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys(str(clip))
        driver.find_element(By.ID, "text").send_keys("Салам")
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text.startswith(("Done", "Error")))
        status = driver.find_element(By.ID, "status").text
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


def test_adapt_to_my_voice_then_transcribe_with_it_then_forget_it(tmp_path):
    """The bundled model (which hears the example as speech, as adapting needs), the example chosen as a clip."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def after(button: str, *starts: str) -> str:
        driver.find_element(By.ID, button).click()
        WebDriverWait(driver, 120).until(lambda d: d.find_element(By.ID, "status").text.startswith((*starts, "Error")))
        return driver.find_element(By.ID, "status").text

    with running_server() as url:
        driver = chromium(tmp_path)
        try:
            driver.get(url)
            WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "voicebox").is_displayed())
            assert not driver.find_element(By.ID, "adapt").is_enabled()  # no clip yet
            driver.find_element(By.ID, "file").send_keys(str(EXAMPLE))
            WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "adapt").is_enabled())
            assert "This visit: 1 clip, " in driver.find_element(By.ID, "voiceinfo").text
            assert after("adapt", "Adapted") == "Adapted to your voice: your next requests use it."
            assert "Using your voice (adapted to 1 clip, " in driver.find_element(By.ID, "voiceinfo").text
            link = driver.find_element(By.ID, "voicemodel")
            assert link.is_displayed() and link.get_attribute("href").endswith("/model")
            assert after("go", "Done").endswith("with your voice")
            voice = json.loads(driver.find_element(By.ID, "json").text)["voice"]
            assert voice.startswith("v-")
            driver.refresh()  # the voice outlives a reload while the server holds it
            WebDriverWait(driver, 20).until(lambda d: "Using your voice" in d.find_element(By.ID, "voiceinfo").text)
            driver.find_element(By.ID, "file").send_keys(str(EXAMPLE))  # the page's audio is gone with the reload
            driver.save_screenshot(str(ARTIFACTS / "browser-voice.png"))
            assert after("forget", "Your voice is forgotten").startswith("Your voice is forgotten")
            assert not driver.find_element(By.ID, "voicemodel").is_displayed()
            assert after("go", "Done").endswith("of audio")
            assert "voice" not in json.loads(driver.find_element(By.ID, "json").text)
        finally:
            driver.quit()


def test_a_recording_is_sent_at_16_khz_whatever_rate_the_browser_records_at(server, tmp_path):
    """Chromium's fake microphone (beeps at the browser's own rate, 44.1 kHz here): the clip the page keeps, and
    sends, is 16 kHz WAV of the length recorded, with the beeps in it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fake_mic = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    driver = chromium(tmp_path, *fake_mic)
    try:
        driver.get(server)
        WebDriverWait(driver, 20).until(lambda d: "model:" in d.find_element(By.ID, "model").text)
        browser_rate = driver.execute_script(
            "const c = new AudioContext(); const r = c.sampleRate; c.close(); return r"
        )
        driver.find_element(By.ID, "record").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "status").text == "Recording…")
        time.sleep(1.5)
        driver.find_element(By.ID, "record").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "status").text.startswith("Recorded"))
        rate, data_bytes, loudest = driver.execute_async_script(
            "const done = arguments[0];"
            "audioBlob.arrayBuffer().then(b => { const v = new DataView(b); let m = 0;"
            "for (let o = 44; o < b.byteLength; o += 2) m = Math.max(m, Math.abs(v.getInt16(o, true)));"
            "done([v.getUint32(24, true), v.getUint32(40, true), m]); });"
        )
        seconds = float(driver.find_element(By.ID, "status").text.split()[1])
        assert browser_rate != 16000 and rate == 16000 and loudest > 1000  # resampled, not relabelled or silenced
        assert 1.0 <= data_bytes / 2 / 16000 <= 5.0 and abs(seconds - data_bytes / 2 / 16000) < 0.06
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "status").text.startswith(("Done", "Error")))
        assert driver.find_element(By.ID, "status").text.startswith("Done")
        assert abs(json.loads(driver.find_element(By.ID, "json").text)["duration"] - seconds) < 0.06
    finally:
        driver.quit()
