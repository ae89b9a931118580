"""Teaching from the live view over HTTP: POST /teach is off by default (403), hands its body to the pipeline's
own Teacher when on (learned and counted like MQTT feedback, a new name adds a class within max_classes),
answers every refusal with its reason, wants a token beyond loopback, and answers bad requests 400/411/413."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from streamsnn.events import EventBatch, make_events
from streamsnn.pipeline import Pipeline
from streamsnn.pipeline.segment import Window
from streamsnn.snn import SpikingNetwork
from streamsnn.web.teach import is_loopback
from streamsnn.web.view import LiveView

SIDE = 16
CLASSES = ["a", "b", "c"]


def window(t_end: int, label: int | None = None, seed: int = 0) -> Window:
    """An unlabelled (or labelled) stream window of random events ending at t_end (µs), as decided."""
    rng = np.random.default_rng(seed + t_end)
    n = 200
    ev = make_events(np.sort(rng.integers(t_end - 50_000, t_end, n)), rng.integers(0, SIDE, n),
                     rng.integers(0, SIDE, n), rng.integers(0, 2, n))
    w = Window(EventBatch(ev, SIDE, SIDE, label=label), t_end - 50_000, t_end, label=label)
    w.predicted = 0
    return w


async def daemon(live: LiveView, *, windows=(), **settings) -> Pipeline:
    """A pipeline (a small fresh network, the live view as its sink) holding `windows` as recent decisions,
    connected to the live view as the daemon connects them."""
    net = SpikingNetwork((SIDE * SIDE * 2, 16, len(CLASSES)), classes=list(CLASSES), seed=1,
                         input_shape=(SIDE, SIDE, 2))
    pipe = Pipeline(None, net, [live], **{"feedback_per_s": 0, **settings})
    for w in windows:
        pipe.recent.add(w)
    live.teaching.connect(pipe.teacher)
    return pipe


@pytest.fixture
async def views():
    made: list[LiveView] = []

    async def make(**kw) -> LiveView:
        lv = await LiveView(kw.pop("host", "127.0.0.1"), 0, classes=list(CLASSES), title="t", **kw).start()
        made.append(lv)
        return lv
    yield make
    for lv in made:
        await lv.close()


async def post(lv: LiveView, body, token: str | None = None, path: str = "teach", method: str = "POST"):
    """(status, headers, JSON answer or text) of one request to the view."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} | ({"X-Teach-Token": token} if token is not None else {})
    req = urllib.request.Request(f"http://127.0.0.1:{lv.port}/{path}", data=data if method == "POST" else None,
                                 headers=headers, method=method)

    def fetch():
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()
    status, hdrs, raw = await asyncio.to_thread(fetch)
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw.decode()


async def raw_request(lv: LiveView, data: bytes, eof: bool = False) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", lv.port)
    w.write(data)
    if eof:  # the client sends nothing more
        w.write_eof()
    await w.drain()
    answer = await asyncio.wait_for(r.read(), 10)
    w.close()
    return answer


async def test_teaching_is_off_by_default_the_endpoint_answers_403_and_the_page_hides_it(views):
    w = window(100_000)
    lv = await views()
    pipe = await daemon(lv, windows=[w])
    status, _, a = await post(lv, {"t_end_us": w.t_end_us, "label": "b"})
    assert status == 403 and a["reason"] == "teaching_off" and "liveview.teach" in a["detail"]
    assert pipe.counters.feedback["received"] == 0 and not w.learned  # never reached the teacher
    assert lv.snapshot()["teach"]["enabled"] is False and lv.snapshot()["teach"]["forbidden"] == 1
    status, _, page = await post(lv, b"", path="", method="GET")
    assert status == 200 and 'id="teach" hidden' in page  # the controls start hidden; hello says teach off
    pipe._worker.shutdown()


async def test_a_class_named_from_the_page_is_learned_as_feedback_and_counted(views):
    w = window(100_000)
    lv = await views(teach=True)
    pipe = await daemon(lv, windows=[w])
    status, _, a = await post(lv, {"t_end_us": w.t_end_us, "label": "b"})
    assert status == 200, a
    assert a["learned"] is True and a["reason"] is None and a["label"] == "b" and a["added"] is False
    assert a["feedback"]["learned"] == 1 and a["classes"] == CLASSES
    assert pipe.counters.feedback["learned"] == 1 and w.learned
    assert pipe.metrics()["feedback"]["learned"] == 1  # the daemon's own metrics
    assert lv.snapshot()["teach"]["learned"] == 1
    pipe._worker.shutdown()


async def test_a_new_name_adds_a_class_that_the_pages_and_the_model_get(views):
    w = window(100_000)
    lv = await views(teach=True)
    pipe = await daemon(lv, windows=[w], new_classes=True, max_classes=8)
    status, _, a = await post(lv, {"t_end_us": w.t_end_us, "label": "cup"})
    assert status == 200 and a["learned"] and a["added"] and a["label"] == "cup"
    assert a["classes"] == [*CLASSES, "cup"] and lv.classes == [*CLASSES, "cup"]
    assert list(pipe.net.classes) == [*CLASSES, "cup"] and pipe.counters.classes_added == 1
    assert lv._latest["classes"].sse.startswith(b"event: classes\n")  # every open page hears it
    pipe._worker.shutdown()


async def test_refusals_answer_with_their_reason(views):
    fresh, labelled, other = window(100_000), window(200_000, label=0), window(300_000)
    lv = await views(teach=True)
    pipe = await daemon(lv, windows=[fresh, labelled, other], feedback_per_s=0.001, feedback_burst=2,
                        max_classes=len(CLASSES))
    assert (await post(lv, {"t_end_us": fresh.t_end_us, "label": "c"}))[0] == 200
    cases = [({"t_end_us": fresh.t_end_us, "label": "a"}, 409, "duplicate"),
             ({"t_end_us": 12345, "label": "a"}, 409, "unknown_sample"),
             ({"t_end_us": labelled.t_end_us, "label": "b"}, 409, "contradicts_label"),
             ({"t_end_us": other.t_end_us, "label": "cup"}, 409, "unknown_class"),
             ({"t_end_us": other.t_end_us, "label": 7}, 409, "label_out_of_range")]
    for body, code, reason in cases:
        status, _, a = await post(lv, body)
        assert (status, a["reason"], a["learned"]) == (code, reason, False), a
        assert a["detail"] and pipe.counters.feedback[reason] == 1
    assert "model.new_classes" in (await post(lv, {"t_end_us": other.t_end_us, "label": "mug"}))[2]["detail"]
    assert (await post(lv, {"t_end_us": other.t_end_us, "label": "a"}))[0] == 200  # the second of the burst
    status, headers, a = await post(lv, {"t_end_us": labelled.t_end_us, "label": "a"})
    assert (status, a["reason"]) == (429, "rate_limited") and headers["Retry-After"] == "1"
    assert "model.feedback_per_s" in a["detail"]
    pipe.learn_from_feedback = False  # model.learn_from_feedback = false
    status, _, a = await post(lv, {"t_end_us": labelled.t_end_us, "label": "a"})
    assert (status, a["reason"]) == (409, "disabled")
    assert lv.snapshot()["teach"]["learned"] == 2 and lv.snapshot()["teach"]["refused"] == 8
    pipe._worker.shutdown()


async def test_bad_requests_are_answered_and_never_teach(views):
    w = window(100_000)
    lv = await views(teach=True)
    pipe = await daemon(lv, windows=[w])
    for body, reason in [(b"not json", "bad_json"), (b"[1, 2]", "not_object"),
                         (b'{"t_end_us": 100000, "label": "b", "token": "x"}', "unknown_keys"),
                         (b'{"t_end_us": 100000}', "missing_label"),
                         (b'{"t_end_us": 100000, "sample": "1", "label": "b"}', "missing_target"),
                         (b'{"t_end_us": "100000", "label": "b"}', "wrong_type"),
                         (b'{"t_end_us": 100000, "label": "a\\u0000b"}', "bad_class_name"),
                         (b"\xff\xfe", "bad_json")]:
        status, _, a = await post(lv, body)
        assert (status, a["reason"], a["learned"]) == (400, reason, False), (body, a)
    assert (await post(lv, b"{}", method="GET", path="teach"))[0] == 405
    answer = await raw_request(lv, b"POST /teach HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411") and b"no_length" in answer
    for odd in ("-5", "1_0", "+3", "0x10", "٣"):  # int() took these: -5 answered 413, 1_0 read 10 bytes
        answer = await raw_request(lv, f"POST /teach HTTP/1.1\r\nContent-Length: {odd}\r\n\r\n{{}}".encode())
        assert answer.startswith(b"HTTP/1.1 400") and b"bad_length" in answer, (odd, answer)
    big = pipe.teacher.max_bytes + 1
    answer = await raw_request(lv, f"POST /teach HTTP/1.1\r\nContent-Length: {big}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 413") and b"oversized" in answer  # refused before reading
    short = b"POST /teach HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"la"
    answer = await raw_request(lv, short, eof=True)
    assert answer.startswith(b"HTTP/1.1 400") and b"short_body" in answer
    lv.header_timeout_s = 0.3  # a body that does not come: answered when the request deadline passes
    answer = await raw_request(lv, short)
    assert answer.startswith(b"HTTP/1.1 408") and b"timeout" in answer
    assert pipe.counters.feedback["learned"] == 0 and not w.learned
    pipe._worker.shutdown()


async def test_beyond_loopback_teaching_needs_the_token(views):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("")
    w = window(100_000)
    lv = await views(host="0.0.0.0", teach=True)
    token = lv.teaching.token
    assert lv.teaching.generated and len(token) >= 20
    pipe = await daemon(lv, windows=[w])
    for sent in (None, "", token[:-1], token + "x", "\u00e9"):
        status, _, a = await post(lv, {"t_end_us": w.t_end_us, "label": "b"}, token=sent)
        assert (status, a["reason"]) == (403, "bad_token"), sent
    assert pipe.counters.feedback["received"] == 0
    status, _, a = await post(lv, {"t_end_us": w.t_end_us, "label": "b"}, token=token)
    assert status == 200 and a["learned"]
    pipe._worker.shutdown()
    # a chosen token is required on loopback too; none chosen on loopback: none needed
    mine = await views(teach=True, teach_token="s3cret")
    assert not mine.teaching.generated and mine.teaching.public() == {"enabled": True, "token": True}
    assert (await post(mine, {"t_end_us": 1, "label": "b"}))[0] == 403
    plain = await views(teach=True)
    assert plain.teaching.public() == {"enabled": True, "token": False} and plain.teaching.token == ""


async def test_the_taught_window_goes_to_the_recording_hook(views):
    w = window(100_000)
    lv = await views(teach=True)
    pipe = await daemon(lv, windows=[w, window(200_000)])
    got = []
    lv.teaching.on_taught = lambda win, label: got.append((win, label))
    assert (await post(lv, {"t_end_us": 100_000, "label": "c"}))[0] == 200
    assert (await post(lv, {"t_end_us": 100_000, "label": "c"}))[0] == 409  # refused: nothing recorded
    lv.teaching.on_taught = lambda win, label: 1 / 0  # a failing recorder does not undo the teaching
    status, _, a = await post(lv, {"t_end_us": 200_000, "label": "a"})
    assert status == 200 and a["learned"] and a["not_recorded"] == "ZeroDivisionError: division by zero"
    assert got == [(w, "c")]
    pipe._worker.shutdown()


async def test_a_name_that_cannot_be_a_class_folder_is_refused_before_it_is_learned_when_recording(views, tmp_path):
    """'x/y' was learned as a new class, answered 200, and only the log said its window was not recorded."""
    from streamsnn.web.teach import record_taught

    ws = [window(100_000), window(200_000)]
    lv = await views(teach=True)
    pipe = await daemon(lv, windows=ws, new_classes=True, max_classes=8)
    lv.teaching.on_taught = record_taught(tmp_path / "taught")
    for label, says in (("x/y", "holds a path separator"), (".hidden", "starts with a dot")):
        status, _, a = await post(lv, {"t_end_us": 100_000, "label": label})
        assert (status, a["learned"], a["reason"]) == (400, False, "bad_class_name") and says in a["detail"], a
    assert list(pipe.net.classes) == CLASSES and not ws[0].learned
    status, _, a = await post(lv, {"t_end_us": 100_000, "label": "cup"})  # a folder name: learned and recorded
    assert status == 200 and a["recorded"].startswith("Train/cup/")
    lv.teaching.on_taught = None  # not recording: the name is the class-name rule's alone
    assert (await post(lv, {"t_end_us": 200_000, "label": "x/y"}))[0] == 200
    pipe._worker.shutdown()


async def test_two_new_names_at_once_stay_within_max_classes(views):
    """Feedback from two tasks (MQTT and the page) naming two new classes when one more fits: one is added
    and learned under its own index, the other refused, whatever their order on the worker."""
    a, b = window(100_000), window(200_000)
    lv = await views(teach=True)
    pipe = await daemon(lv, windows=[a, b], new_classes=True, max_classes=len(CLASSES) + 1)
    gate = threading.Event()
    busy = asyncio.ensure_future(pipe.in_worker(gate.wait, 10))  # both messages wait for the worker
    first = asyncio.ensure_future(pipe.teacher.teach({"t_end_us": a.t_end_us, "label": "cup"}))
    second = asyncio.ensure_future(pipe.teacher.teach({"t_end_us": b.t_end_us, "label": "mug"}))
    await asyncio.sleep(0.2)  # both judged while the model still had room
    gate.set()
    await busy
    one, two = await first, await second
    assert one.learned and one.label == "cup" and one.added
    assert not two.learned and two.reason == "unknown_class" and "max_classes" in two.detail
    assert list(pipe.net.classes) == [*CLASSES, "cup"] and pipe.counters.classes_added == 1
    assert not b.learned  # the refused window may still be taught
    pipe._worker.shutdown()


async def test_the_daemon_prints_a_generated_token_once_and_masks_a_chosen_one(capsys):
    from streamsnn.config import build_config
    from streamsnn.daemon import _start_liveview

    net = SpikingNetwork((SIDE * SIDE * 2, 8, 3), classes=list(CLASSES), seed=0, input_shape=(SIDE, SIDE, 2))
    cfg = build_config({"liveview": {"host": "0.0.0.0", "port": 0, "teach": True}})
    sinks: list = []
    await _start_liveview(cfg, None, sinks, "n", net, quiet=False)
    try:
        token = sinks[0].teaching.token
        err = capsys.readouterr().err
        assert f"live view teaching token: {token} " in err and f"#token={token}" in err
    finally:
        await sinks[0].close()
    cfg = build_config({"liveview": {"port": 0, "teach": True, "teach_token": "s3cret"}})
    assert cfg.masked()["liveview"]["teach_token"] == "***"
    await _start_liveview(cfg, None, sinks, "n", net, quiet=False)
    try:
        assert sinks[1].teaching.token == "s3cret" and "s3cret" not in capsys.readouterr().err
    finally:
        await sinks[1].close()
    off = build_config({"liveview": {"port": 0}})
    assert off.liveview.teach is False and off.liveview.teach_token == ""  # off by default


async def test_taught_windows_are_recorded_into_class_folders_that_a_dataset_reads(views, tmp_path):
    from streamsnn.io import open_dataset
    from streamsnn.web.teach import record_taught

    ws = [window(100_000 * k) for k in range(1, 7)]
    lv = await views(teach=True)
    pipe = await daemon(lv, windows=ws, new_classes=True, max_classes=8)
    lv.teaching.on_taught = record_taught(tmp_path / "taught")
    answers = []
    for k, w in enumerate(ws):
        status, _, a = await post(lv, {"t_end_us": w.t_end_us, "label": "cup" if k % 2 else "b"})
        assert status == 200 and a["learned"]
        answers.append(a["recorded"])
    assert answers[0].startswith("Train/b/") and answers[1].startswith("Train/cup/")
    pipe._worker.shutdown()
    data = open_dataset(tmp_path / "taught")
    assert sorted(data.classes) == ["b", "cup"]
    samples = data.split("train").samples
    assert len(samples) == 6
    back = samples[0].load()
    assert (back.width, back.height) == (SIDE, SIDE) and len(back) == len(ws[0].batch)
    assert int(back.events["t"][0]) == 0  # times start at 0, as `streamsnn record` writes them
