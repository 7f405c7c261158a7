"""The playground page in a real browser: Debian's headless chromium driven by selenium, against the live server
(tiny model, a profile database, the offline learner). Skipped where chromium or its driver is not installed
(.ci/run installs both)."""

import shutil

import pytest

from live_server import live_server
from personalign.commands.serve import offline_learner
from personalign.serving.profiles import ProfileStore
from test_server import new_engine

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--no-first-run", "--disable-dev-shm-usage", "--window-size=1200,1000"]


@pytest.fixture
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(30)
    yield session
    session.quit()


def test_ask_both_pick_one_and_watch_the_weights_move(browser, models, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    store = ProfileStore(tmp_path / "profiles.db")
    key = store.add_user("alice")
    with live_server(new_engine(models), store=store, learner=offline_learner()) as (url, _):
        browser.get(url + "/")
        wait = WebDriverWait(browser, 60)
        find = browser.find_element
        find(By.ID, "key").send_keys(key, Keys.TAB)  # change event: the page loads alice's profile
        prompt = find(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("Explain how rain forms.")
        slider = find(By.ID, "dim-concise")
        slider.click()  # the middle of the track
        for _ in range(10):
            slider.send_keys(Keys.ARROW_RIGHT)
        assert int(find(By.ID, "out-concise").text) > 0
        find(By.ID, "ask").click()
        wait.until(lambda _: find(By.ID, "status").text == "done: which is better?")
        base, personal = find(By.ID, "base").text, find(By.ID, "personal").text
        assert base and personal and base != personal  # both streamed; the sliders personalized the right one
        before = find(By.ID, "weights").text
        find(By.ID, "pick-personal").click()
        wait.until(lambda _: find(By.ID, "status").text.startswith("thanks"))
        after = find(By.ID, "weights").text
        assert after != before and "(1 choices)" in after
        assert [event.choice for _, event in store.feedback("alice")] == ["b"]
        assert store.feedback("alice")[0][1].answer_b == personal
    store.close()
