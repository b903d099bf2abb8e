"""Rule-based CheXpert labeler: phrase matching with negation and uncertainty scopes.

Each sentence is searched for mentions of the 14 observations (see ``rules_phrases``). A mention
is then classified, in this order of precedence:
1. uncertain if a negated-uncertainty phrase ("cannot exclude", "is not excluded") is in scope;
2. negative if a negation ("no", "without", "resolved", "is not seen") is in scope;
3. uncertain if an uncertainty word ("may", "possible", "is suspected") is in scope, or the
   mention is only a sign of the finding (blunted costophrenic angle for an effusion);
4. positive otherwise.
A trigger before a mention is in scope when at most ``PRE_SCOPE_WORDS`` words and no scope
terminator ("but", "however", "there is", ...) separate them. A trigger after a mention must
follow within ``POST_SCOPE_WORDS`` words. An observation is positive when any mention is positive,
else uncertain when any is uncertain, else negative when any is negative, else blank.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from r2gen.evaluation.labels import (
    NEGATIVE,
    OBSERVATIONS,
    POSITIVE,
    UNCERTAIN,
    ReportLabels,
    combine_mentions,
    derive_no_finding,
)
from r2gen.evaluation.rules_phrases import (
    NEGATED_UNCERTAINTY,
    PHRASES,
    POST_NEGATION,
    POST_UNCERTAINTY,
    PRE_NEGATION,
    PRE_UNCERTAINTY,
    PSEUDO_NEGATION,
    SCOPE_TERMINATORS,
    ObservationPhrases,
)

PRE_SCOPE_WORDS = 15
POST_SCOPE_WORDS = 6
# A size descriptor belongs to an anatomical subject when it directly precedes it (at most this
# many words between) or follows it within FOLLOWING_DESCRIPTOR_WORDS without a preposition
# that attaches it to another noun ("the heart is obscured by a large effusion").
PRECEDING_DESCRIPTOR_WORDS = 2
FOLLOWING_DESCRIPTOR_WORDS = 8
_DETACHING_WORDS = re.compile(r"\b(?:by|with|from|for|than|which|that)\b|[,;]")
_SENTENCE_END = re.compile(r"[.;!?]+(?=\s|$)|\n")

Span = tuple[int, int]


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    patterns = list(patterns)
    if not patterns:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(f"(?:{p})" for p in patterns) + r")(?!\w)")


def _spans(pattern: re.Pattern[str] | None, text: str) -> list[Span]:
    return [] if pattern is None else [match.span() for match in pattern.finditer(text)]


def _overlaps(span: Span, others: Iterable[Span]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in others)


def _word_count(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Mention:
    """One matched mention: its observation, sentence, character span and label."""

    observation: str
    sentence: str
    span: Span
    label: int

    @property
    def text(self) -> str:
        return self.sentence[self.span[0] : self.span[1]]


@dataclass
class _Triggers:
    negated_uncertainty: list[Span]
    pre_negation: list[Span]
    post_negation: list[Span]
    pre_uncertainty: list[Span]
    post_uncertainty: list[Span]
    terminators: list[Span]


class _CompiledObservation:
    def __init__(self, phrases: ObservationPhrases) -> None:
        self.name = phrases.name
        self.mentions = _compile(phrases.mentions)
        self.uncertain_mentions = _compile(phrases.uncertain_mentions)
        self.subjects = _compile(phrases.subjects)
        self.descriptors = [
            (UNCERTAIN, _compile(phrases.borderline)),
            (POSITIVE, _compile(phrases.enlarged)),
            (NEGATIVE, _compile(phrases.normal)),
        ]
        self.exclusions = _compile(phrases.exclusions)


class RuleBasedLabeler:
    """Labels reports with the 14 CheXpert observations using the rules described in this module."""

    name = "rules"

    def __init__(self, phrases: Sequence[ObservationPhrases] = PHRASES) -> None:
        self._observations = [_CompiledObservation(item) for item in phrases]
        self._negated_uncertainty = _compile(NEGATED_UNCERTAINTY)
        self._pseudo_negation = _compile(PSEUDO_NEGATION)
        self._pre_negation = _compile(PRE_NEGATION)
        self._post_negation = _compile(POST_NEGATION)
        self._pre_uncertainty = _compile(PRE_UNCERTAINTY)
        self._post_uncertainty = _compile(POST_UNCERTAINTY)
        # The comma-clause terminator starts with punctuation, so it cannot take the word guards.
        self._terminators = _compile(SCOPE_TERMINATORS[:-1])
        self._comma_clause = re.compile(SCOPE_TERMINATORS[-1])

    def label_reports(self, reports: Sequence[str]) -> list[ReportLabels]:
        """Label each report; identical texts are labelled once."""
        cache: dict[str, ReportLabels] = {}
        results = []
        for report in reports:
            if report not in cache:
                cache[report] = self.label(report)
            results.append(dict(cache[report]))
        return results

    def label(self, report: str) -> ReportLabels:
        """Return the label of each observation: 1, 0, -1 or None (blank)."""
        by_observation: dict[str, list[int]] = {name: [] for name in OBSERVATIONS}
        for mention in self.find_mentions(report):
            by_observation[mention.observation].append(mention.label)
        labels = {name: combine_mentions(found) for name, found in by_observation.items()}
        labels["No Finding"] = derive_no_finding(labels)
        return {name: labels[name] for name in OBSERVATIONS}

    def find_mentions(self, report: str) -> list[Mention]:
        """Return every labelled mention in the report, sentence by sentence."""
        mentions = []
        for sentence in split_sentences(report):
            triggers = self._find_triggers(sentence)
            for observation in self._observations:
                for span, base_label in self._observation_spans(observation, sentence):
                    label = self._classify(sentence, span, base_label, triggers)
                    mentions.append(Mention(observation.name, sentence, span, label))
        return mentions

    def _find_triggers(self, sentence: str) -> _Triggers:
        negated_uncertainty = _spans(self._negated_uncertainty, sentence)
        blocked = negated_uncertainty + _spans(self._pseudo_negation, sentence)
        terminators = _spans(self._terminators, sentence) + _spans(self._comma_clause, sentence)
        return _Triggers(
            negated_uncertainty=negated_uncertainty,
            pre_negation=[s for s in _spans(self._pre_negation, sentence) if not _overlaps(s, blocked)],
            post_negation=[s for s in _spans(self._post_negation, sentence) if not _overlaps(s, blocked)],
            pre_uncertainty=_spans(self._pre_uncertainty, sentence),
            post_uncertainty=_spans(self._post_uncertainty, sentence),
            terminators=terminators,
        )

    def _observation_spans(self, observation: _CompiledObservation, sentence: str) -> list[tuple[Span, int]]:
        excluded = _spans(observation.exclusions, sentence)
        found = [(span, POSITIVE) for span in _spans(observation.mentions, sentence)]
        found += [(span, UNCERTAIN) for span in _spans(observation.uncertain_mentions, sentence)]
        found += _subject_spans(observation, sentence)
        return [(span, label) for span, label in found if not _overlaps(span, excluded)]

    def _classify(self, sentence: str, span: Span, base_label: int, triggers: _Triggers) -> int:
        if base_label == NEGATIVE:
            return NEGATIVE
        scope = _Scope(sentence, span, triggers.terminators)
        if scope.any_before(triggers.negated_uncertainty) or scope.any_after(triggers.negated_uncertainty):
            return UNCERTAIN
        if scope.any_before(triggers.pre_negation) or scope.any_after(triggers.post_negation):
            return NEGATIVE
        if base_label == UNCERTAIN:
            return UNCERTAIN
        if scope.any_before(triggers.pre_uncertainty) or scope.any_after(triggers.post_uncertainty):
            return UNCERTAIN
        return POSITIVE


class _Scope:
    """Checks whether trigger spans reach one mention span within a sentence."""

    def __init__(self, sentence: str, span: Span, terminators: list[Span]) -> None:
        self.sentence = sentence
        self.start, self.end = span
        self.terminators = terminators

    def _separated(self, left: int, right: int, max_words: int) -> bool:
        if _word_count(self.sentence[left:right]) > max_words:
            return True
        return any(left <= start and end <= right for start, end in self.terminators)

    def any_before(self, triggers: list[Span]) -> bool:
        for start, end in triggers:
            if self.start <= start and end <= self.end:
                return True  # inside a subject span, as "not" in "heart is not enlarged"
            if end <= self.start and not self._separated(end, self.start, PRE_SCOPE_WORDS):
                return True
        return False

    def any_after(self, triggers: list[Span]) -> bool:
        for start, end in triggers:
            if self.start <= start and end <= self.end:
                return True
            if start >= self.end and not self._separated(self.end, start, POST_SCOPE_WORDS):
                return True
        return False


def _descriptor_spans(observation: _CompiledObservation, sentence: str) -> list[tuple[Span, int]]:
    # Descriptor kinds are listed from most to least specific, so "upper limits of normal" is
    # borderline rather than normal and "borderline enlarged" is borderline rather than enlarged.
    chosen: list[tuple[Span, int]] = []
    for label, pattern in observation.descriptors:
        for span in _spans(pattern, sentence):
            if not _overlaps(span, [taken for taken, _ in chosen]):
                chosen.append((span, label))
    return sorted(chosen)


def _subject_spans(observation: _CompiledObservation, sentence: str) -> list[tuple[Span, int]]:
    if observation.subjects is None:
        return []
    descriptors = _descriptor_spans(observation, sentence)
    found = []
    for subject in _spans(observation.subjects, sentence):
        descriptor = _attached_descriptor(sentence, subject, descriptors)
        if descriptor is not None:
            (start, end), label = descriptor
            found.append(((min(start, subject[0]), max(end, subject[1])), label))
    return found


def _attached_descriptor(
    sentence: str, subject: Span, descriptors: list[tuple[Span, int]]
) -> tuple[Span, int] | None:
    for span, label in reversed(descriptors):
        gap = sentence[span[1] : subject[0]]
        if span[1] <= subject[0] and _word_count(gap) <= PRECEDING_DESCRIPTOR_WORDS and "," not in gap:
            return span, label
    for span, label in descriptors:
        gap = sentence[subject[1] : span[0]]
        if span[0] >= subject[1] and _word_count(gap) <= FOLLOWING_DESCRIPTOR_WORDS:
            return None if _DETACHING_WORDS.search(gap) else (span, label)
    return None


def split_sentences(report: str) -> list[str]:
    """Lowercase a report, collapse whitespace and split it at sentence ends and semicolons."""
    sentences = []
    for part in _SENTENCE_END.split(report.lower()):
        sentence = " ".join(part.split())
        if sentence:
            sentences.append(sentence)
    return sentences
