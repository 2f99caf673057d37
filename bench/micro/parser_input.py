"""The request head every parser benchmark parses (test_parser_bench.py on CPython,
pypy_parse.py on PyPy): a realistic 400-byte GET with 10 fields. Python 3.9 syntax."""

GET = (
    b"GET /api/v1/videos/12345/segments/00042.ts?quality=1080p HTTP/1.1\r\n"
    b"Host: media.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0\r\n"
    b"Accept: */*\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Referer: https://www.example.com/\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: sid=9f8e7d6c5b4a; theme=dark\r\n"
    b"X-Request-Id: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\r\n"
    b"Cache-Control: no-cache\r\n"
    b"\r\n"
)
PIPELINED = GET * 16
TARGET = b"/api/v1/videos/12345/segments/00042.ts?quality=1080p"
