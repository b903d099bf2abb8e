"""METEOR 1.5 through the jar that ships with pycocoevalcap 1.2, with reusable segment statistics.

pycocoevalcap's own ``Meteor`` class starts the jar, sends one ``SCORE`` line per segment to get
its sufficient statistics, then one ``EVAL`` line with all statistics to get the corpus score.
This wrapper sends the same command and the same lines, so it returns the same numbers. It also
keeps the statistics, so a bootstrap can send one ``EVAL`` line per resample to the same Java
process and get the exact corpus METEOR of that resample without re-aligning any segment.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import pycocoevalcap.meteor.meteor as coco_meteor

logger = logging.getLogger(__name__)

METEOR_JAR_DIR = Path(coco_meteor.__file__).resolve().parent
METEOR_JAR = "meteor-1.5.jar"
# The same command line as pycocoevalcap 1.2 (2 GB heap, English, normalised input).
METEOR_ARGS = ["-jar", "-Xmx2G", METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"]


class MeteorUnavailableError(RuntimeError):
    """Raised when Java or the METEOR jar fails to start or stops responding."""


def _one_line(text: str) -> str:
    # The jar reads one request per line, so a line break inside a report would shift every later
    # response by one. pycocoevalcap sends such text unchanged and then hangs or misreads scores.
    # NOTE: this is the only input change compared with pycocoevalcap, and -norm tokenizes on
    # whitespace anyway, so it leaves the score of well-formed input unchanged.
    return text.replace("\r", " ").replace("\n", " ")


def format_score_line(hypothesis: str, references: Sequence[str]) -> str:
    """Build the ``SCORE`` request exactly as pycocoevalcap 1.2 does for one segment."""
    hypothesis = _one_line(hypothesis).replace("|||", "").replace("  ", " ")
    references = [_one_line(reference) for reference in references]
    return " ||| ".join(("SCORE", " ||| ".join(references), hypothesis))


class MeteorProcess:
    """A running METEOR 1.5 jar, used as a context manager so that the JVM always stops."""

    def __init__(self, java: str | None = None) -> None:
        java_path = java or shutil.which("java")
        if java_path is None:
            raise MeteorUnavailableError("no `java` executable on PATH; install a Java runtime or put `java` on PATH")
        try:
            self._process = subprocess.Popen(
                [java_path, *METEOR_ARGS],
                cwd=METEOR_JAR_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as error:
            raise MeteorUnavailableError(f"failed to start {java_path} -jar {METEOR_JAR}: {error}") from error

    def __enter__(self) -> MeteorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the JVM, killing it if it does not exit within 10 seconds of closing its input."""
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _request(self, line: str, response_lines: int) -> list[str]:
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            self._process.stdin.write(f"{line}\n".encode())
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise MeteorUnavailableError(f"the METEOR jar stopped: {self._stderr_tail()}") from error
        responses = []
        for _ in range(response_lines):
            response = self._process.stdout.readline()
            if not response:
                raise MeteorUnavailableError(f"the METEOR jar stopped: {self._stderr_tail()}")
            responses.append(response.decode().strip())
        return responses

    def _stderr_tail(self) -> str:
        self._process.kill()
        self._process.wait()
        assert self._process.stderr is not None
        return self._process.stderr.read().decode(errors="replace")[-500:] or "no error output"

    def segment_statistics(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[str]:
        """Align each hypothesis with its references and return the jar's sufficient statistics."""
        return [
            self._request(format_score_line(hypothesis, refs), 1)[0]
            for hypothesis, refs in zip(hypotheses, references, strict=True)
        ]

    def corpus_score(self, statistics: Sequence[str]) -> tuple[float, list[float]]:
        """Return the corpus METEOR and the per-segment scores for these segment statistics."""
        if not statistics:
            raise ValueError("METEOR needs at least one segment")
        line = "EVAL" + "".join(f" ||| {item}" for item in statistics)
        responses = self._request(line, len(statistics) + 1)
        return float(responses[-1]), [float(response) for response in responses[:-1]]
