"""When the worker's poller hands a request to a thread (`serving._Arrival`): only when the thread
can serve it without waiting on the client. A thread that waited was how slow clients held them."""
from baal_backend.serving import BUFFER_BYTES, _Arrival

BODY = b'{"action": "SOMETHING_IGNORED", "project": {"id": 1}}'


def _arrives(*pieces: bytes) -> list:
    """Whether the request may go to a thread after each piece."""
    arrival = _Arrival()
    return [arrival.add(piece) for piece in pieces]


def test_a_request_goes_to_a_thread_once_whole():
    assert _arrives(b"GET /health HTTP/1.1\r\n", b"Host: x\r\nX-Slow: a", b"b", b"\r\n\r\n") == [False] * 3 + [True]
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    assert _arrives(head, BODY[:10], BODY[10:]) == [False, False, True]
    chunked = b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert _arrives(chunked, b"%x\r\n" % len(BODY) + BODY + b"\r\n", b"0\r\n", b"\r\n") == [False, False, False, True]


def test_a_thread_takes_it_at_once_when_waiting_could_not_end_sooner():
    # the client sends its body only after "100 Continue", which gunicorn sends when the app reads it
    assert _arrives(b"POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n") == [True]
    assert _arrives(b"GARBAGE\r\n\r\n") == [True]  # gunicorn answers 400
    big = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (4 * BUFFER_BYTES)
    assert _arrives(big, b"x" * (BUFFER_BYTES // 2), b"x" * BUFFER_BYTES) == [False, False, True]  # the thread reads on
