"""PDF reports through the service: read back with pypdf and looked at as PNG."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pypdf
from PIL import Image

from tests.integration.harness import output_of

ROWS_PER_PAGE = 20
NAMES = ["Çağla Öztürk", "Jürgen Groß", "Σοφία Παπαδοπούλου", "Дмитрий Иванов"]
MARKUP = ["<b>bold</b>", "Tom & Jerry", "<font color=red>x</font>", "&amp; &lt;"]


def records(count: int, start: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": start + i,
            "name": NAMES[i % len(NAMES)],
            "note": MARKUP[i % len(MARKUP)],
            "amount": round(i * 1.25, 2),
        }
        for i in range(count)
    ]


def page_png(pdf: Path, page: int, out: Path) -> Path:
    prefix = out / f"page{page}"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", str(page), "-l", str(page), "-singlefile",
         str(pdf), str(prefix)],
        check=True, timeout=60,
    )  # fmt: skip
    return prefix.with_suffix(".png")


def ink_share(png: Path) -> float:
    """Share of pixels that are not near-white."""
    image = Image.open(png).convert("L")
    histogram = image.histogram()
    return sum(histogram[:200]) / (image.width * image.height)


class TestPdfReport:
    async def test_report_pages_text_and_rendering(self, harness, tmp_path):
        """Title, header and "Page n of m" on every page, Unicode and markup as text."""
        batches = [records(100, 1), records(100, 101), records(5, 201)]
        start, end = await harness.write_batches(batches)
        async with harness.service():
            await harness.send_request(
                harness.request(
                    "report-1", start, end, format="pdf", title="Quarterly <i>report</i> & co",
                    columns=["id", "name", "note", "amount"],
                    options={"rows_per_page": ROWS_PER_PAGE},
                )
            )  # fmt: skip
            result = await harness.result("report-1")
        assert result["status"] == "completed", result
        assert result["records"] == 205
        path = output_of(result)
        assert path.name == "report-1.pdf"
        assert result["bytes"] == path.stat().st_size
        reader = pypdf.PdfReader(path)
        pages = len(reader.pages)
        assert pages == 11  # 205 rows at 20 a page
        texts = [page.extract_text() for page in reader.pages]
        assert "Quarterly <i>report</i> & co" in texts[0]
        assert harness.records_topic in texts[0]
        for number, text in enumerate(texts, 1):
            words = " ".join(text.split())
            assert "id name note amount" in words
            assert f"Page {number} of {pages}" in words
        first_lines = texts[0]
        assert "Çağla Öztürk" in first_lines
        assert "Jürgen Groß" in first_lines
        assert "Σοφία Παπαδοπούλου" in first_lines
        assert "Дмитрий Иванов" in first_lines
        for literal in MARKUP:
            assert literal in first_lines, literal
        assert "1 Çağla Öztürk <b>bold</b> 0.0" in texts[0]
        assert "205 Çağla Öztürk <b>bold</b> 5.0" in texts[-1]
        assert reader.metadata is not None
        assert reader.metadata.title == "Quarterly <i>report</i> & co"
        # Page 1 and the last page render to something that is not blank.
        first_png = page_png(path, 1, tmp_path)
        last_png = page_png(path, pages, tmp_path)
        assert ink_share(first_png) > 0.02
        assert ink_share(last_png) > 0.005
        if os.environ.get("EXPORT_KEEP_PNG"):
            for png in (first_png, last_png):
                png.replace(Path(os.environ["EXPORT_KEEP_PNG"]) / png.name)

    async def test_numbers_print_as_written(self, harness):
        """Numbers print digit for digit as the message spells them, nested ones too."""
        message = (
            b'[{"id": 18446744073709551616, "name": "x", "amount": 0.10000000000000000001,'
            b' "note": {"n": 1E5, "m": -0}},'
            b' {"id": 1.50, "name": "y", "amount": 123456789012345678901234567890,'
            b' "note": [1.50, -0.0]}]'
        )
        start, end = await harness.write_batches([message])
        columns = ["id", "name", "amount", "note"]
        async with harness.service():
            request = harness.request("numbers", start, end, format="pdf", columns=columns)
            await harness.send_request(request)
            result = await harness.result("numbers")
        assert result["status"] == "completed", result
        text = pypdf.PdfReader(output_of(result)).pages[0].extract_text()
        for literal in [
            "18446744073709551616", "0.10000000000000000001", '{"n":1E5,"m":-0}', "1.50",
            "123456789012345678901234567890", "[1.50,-0.0]",
        ]:  # fmt: skip
            assert literal in text, literal

    async def test_page_limit_is_too_large_and_leaves_nothing(self, harness):
        """A report past EXPORT_PDF_MAX_PAGES fails with `too_large`; no file appears."""
        start, end = await harness.write_batches([records(50)])
        async with harness.service(pdf_max_pages=2):
            await harness.send_request(
                harness.request(
                    "big", start, end, format="pdf", columns=["id", "name"],
                    options={"rows_per_page": 10},
                )
            )  # fmt: skip
            result = await harness.result("big")
        assert result["error"]["reason"] == "too_large"
        assert "2 pages" in result["error"]["message"]
        assert [p for p in harness.output_dir.iterdir() if not p.name.startswith(".")] == []
        assert not any(p.suffix == ".part" for p in harness.output_dir.iterdir())

    async def test_too_many_columns_is_invalid_request(self, harness):
        """Columns that cannot fit legibly fail with `invalid_request` saying so."""
        start, end = await harness.write_batches([records(1)])
        async with harness.service():
            await harness.send_request(
                harness.request(
                    "wide", start, end, format="pdf", columns=[f"c{i}" for i in range(200)]
                )
            )
            result = await harness.result("wide")
        assert result["error"]["reason"] == "invalid_request"
        assert result["error"]["message"].startswith("columns: 200 columns cannot fit legibly")

    async def test_rendering_does_not_hold_up_other_exports(self, harness):
        """A CSV requested after a large PDF finishes first: the loop stays free."""
        start, end = await harness.write_batches([records(1000, n * 1000) for n in range(15)])
        async with harness.service():
            await harness.send_request(
                harness.request(
                    "slow-pdf", start, end, format="pdf", columns=["id", "name", "note"]
                )
            )
            small_start, small_end = await harness.write_batches([records(3)])
            await harness.send_request(harness.request("quick-csv", small_start, small_end))
            await harness.result("slow-pdf", wait_s=120)
            order = [r["export_id"] for r in harness._seen if r["status"] == "completed"]
        assert order.index("quick-csv") < order.index("slow-pdf")

    async def test_worker_that_dies_fails_its_export_and_the_pool_recovers(self, harness):
        """Killing the worker mid-report gives `internal`; the next PDF completes."""
        start, _ = await harness.write_batches([records(5)])
        async with harness.service() as service:
            await harness.send_request(
                harness.request("doomed", start, start + 2, format="pdf", columns=["id"])
            )
            for _ in range(100):
                if service.pdf_pool.worker_pids():
                    break
                await asyncio.sleep(0.1)
            (pid,) = service.pdf_pool.worker_pids()
            await asyncio.sleep(0.5)
            os.kill(pid, 9)
            await harness.write_batches([records(1, 99)])
            failed = await harness.result("doomed")
            assert failed["error"]["reason"] == "internal"
            assert "worker process died" in failed["error"]["message"]
            s2, e2 = await harness.write_batches([records(3)])
            await harness.send_request(
                harness.request("phoenix", s2, e2, format="pdf", columns=["id"])
            )
            assert (await harness.result("phoenix"))["status"] == "completed"

    async def test_deadline_reaches_the_worker(self, harness):
        """A PDF export past its deadline fails with `timeout` and its worker is stopped."""
        start, _ = await harness.write_batches([records(5)])
        async with harness.service(timeout_s=2) as service:
            await harness.send_request(
                harness.request("late-pdf", start, start + 3, format="pdf", columns=["id"])
            )
            result = await harness.result("late-pdf")
            assert result["error"]["reason"] == "timeout"
            assert service.pdf_pool.worker_pids() == []
