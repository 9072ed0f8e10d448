"""Every screen in each of the three languages, measured in the browser: every tap target at least 48 x 48 CSS
px, every text at least 7:1 against its background, the texts in the officer's (or the driver's) language,
and a screenshot of each main screen saved as a test artifact (``$PATROLKIT_SCREENSHOTS``, default
``<tmp>/patrolkit-screenshots``)."""

from __future__ import annotations

from typing import Any

import pytest
from officer_rig import OfficerRig

pytestmark = pytest.mark.browser

MEASURE = """() => {
  const targets = 'a[href], button, input:not([type=hidden]), select, textarea, [role=button], summary';
  const small = [];
  for (const el of document.querySelectorAll(targets)) {
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || style.visibility === 'hidden' || r.right <= 0 || r.bottom <= 0) continue;
    if (r.width < 48 || r.height < 48) small.push(`${el.tagName}#${el.id}.${el.className} ${r.width.toFixed(1)}x${r.height.toFixed(1)}`);
  }
  const lum = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/); const p = m[1].split(',').map(Number);
    const ch = p.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return {l: 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2], a: p.length > 3 ? p[3] : 1};
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const bg = getComputedStyle(e).backgroundColor;
      if (lum(bg).a > 0) return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  const low = [];
  let texts = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.textContent.trim()) continue;
    const el = n.parentElement;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === 'hidden' || r.right <= 0) continue;
    texts++;
    const fg = lum(getComputedStyle(el).color).l, bg = lum(background(el)).l;
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    if (ratio < 7) low.push(`${el.tagName}.${el.className} "${n.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return {small, low, texts};
}"""

WORDS = {  # one text per screen that proves the language
    "kk": {
        "new": "Жаңа хаттама",
        "driver": "Сіздің айыппұлыңыз",
        "shift": "Осы ауысым",
        "signin": "Жүйеге кіру",
    },
    "ru": {"new": "Новый протокол", "driver": "Ваш штраф", "shift": "Эта смена", "signin": "Вход"},
    "en": {"new": "New protocol", "driver": "Your fine", "shift": "This shift", "signin": "Sign in"},
}
BADGE = {"ru": "B-1", "kk": "B-2", "en": "B-3"}


def check_screen(rig: OfficerRig, page: Any, name: str, lang: str) -> None:
    page.wait_for_load_state()
    found = page.evaluate(MEASURE)
    assert found["texts"] > 3, f"{name}: no text measured"
    assert found["small"] == [], f"{name} ({lang}): tap targets under 48 px: {found['small']}"
    assert found["low"] == [], f"{name} ({lang}): text contrast under 7:1: {found['low']}"
    rig.shot(page, f"{lang}-{name}")


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_every_screen_in_each_language_has_big_targets_and_strong_contrast(
    rig: OfficerRig, tablet: Any, lang: str
) -> None:
    words = WORDS[lang]
    tablet.goto(f"{rig.url}/signin?lang={lang}")
    assert words["signin"] in tablet.inner_text("h1")
    check_screen(rig, tablet, "01-signin", lang)
    rig.sign_in(tablet, BADGE[lang])
    assert words["new"] in tablet.inner_text("h1")
    check_screen(rig, tablet, "02-new-stop", lang)
    tablet.fill("#driver_iin", "850101300125")
    tablet.click("button.article-button[value='592.1']")
    assert tablet.locator(".field-error").count() >= 1
    check_screen(rig, tablet, "02b-new-stop-errors", lang)

    number = rig.new_stop(tablet, name="Жанболатова Арман")  # a probable match: the officer is asked
    check_screen(rig, tablet, "03-stop-and-check", lang)
    tablet.goto(f"{rig.url}/check")
    check_screen(rig, tablet, "03c-check", lang)
    tablet.go_back()
    tablet.click("#to-driver")
    tablet.click(f".langs a[lang='{lang}']")
    assert words["driver"] in tablet.inner_text("h1")
    check_screen(rig, tablet, "04-driver", lang)
    tablet.click("#agree")
    check_screen(rig, tablet, "04b-driver-agreed", lang)
    tablet.click("#pay")
    rig.phase(tablet, "question")
    check_screen(rig, tablet, "05-payment-question", lang)
    tablet.click("#answer-yes")
    rig.phase(tablet, "paid")
    tablet.wait_for_selector("#copy-2[data-state='printed']")
    check_screen(rig, tablet, "06-paid-receipts", lang)
    tablet.click("#preview-link")
    check_screen(rig, tablet, "07-receipts-preview", lang)
    tablet.goto(f"{rig.url}/shift")
    assert words["shift"] in tablet.inner_text("h1") and number in tablet.inner_text("#shift-list")
    check_screen(rig, tablet, "08-shift", lang)
    tablet.click("form[action='/lock'] button")
    tablet.wait_for_url("**/lock?**")
    check_screen(rig, tablet, "09-lock", lang)
    tablet.fill("#pin", {"ru": "1234", "kk": "5678", "en": "2468"}[lang])
    tablet.click("button.primary")
    tablet.wait_for_url("**/shift")


def test_the_driver_switches_language_on_the_driver_screen(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet, "B-1")
    rig.new_stop(tablet)
    tablet.click("#to-driver")
    rules = {}
    for lang in ("kk", "ru", "en"):
        tablet.click(f".langs a[lang='{lang}']")
        rules[lang] = tablet.inner_text("#own-card-rule")
        assert tablet.get_attribute("section.driver", "lang") == lang
    assert rules == {
        "kk": "Тек өз картаңызбен төлеңіз. Басқа адамның атындағы карта қабылданбайды.",
        "ru": "Оплачивайте только своей картой. Карта на другое имя не принимается.",
        "en": "Pay only with your own card. A card in another name is refused.",
    }
    tablet.click(".langs a[lang='kk']")
    assert tablet.inner_text("#offence") == "Жылдамдықтың 10-нан 20 км/сағ-қа дейін артуы"
    assert "Новая остановка" in tablet.inner_text("header nav")  # the officer's own controls stay Russian


def test_the_measurement_catches_a_small_target_and_faint_text(rig: OfficerRig, tablet: Any) -> None:
    """The measuring script itself fails a screen with a 40 px button or grey-on-white text."""
    rig.sign_in(tablet, "B-1")
    tablet.evaluate(
        """() => {
            const b = document.createElement('button'); b.textContent = 'x'; b.className = 'probe';
            b.style.minHeight = '40px'; b.style.height = '40px';
            document.querySelector('main').append(b);
            const p = document.createElement('p'); p.textContent = 'faint text'; p.className = 'probe';
            p.style.color = '#888';
            document.querySelector('main').append(p);
        }"""
    )
    found = tablet.evaluate(MEASURE)
    assert any("probe" in item and "40.0" in item for item in found["small"])
    assert any('"faint text"' in item for item in found["low"])


def test_officer_changes_own_language(rig: OfficerRig, tablet: Any) -> None:
    rig.sign_in(tablet, "B-1")
    tablet.click("form[action='/language'] button[lang='en']")
    assert "New protocol" in tablet.inner_text("h1")
    tablet.click("form[action='/language'] button[lang='ru']")
    assert "Новый протокол" in tablet.inner_text("h1")
