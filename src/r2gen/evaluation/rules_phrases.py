"""Phrase lists of the rule-based CheXpert labeler, as regular expressions over lowercased text.

The lists are written for this project; no code or list was copied. Scope choices: a calcified
granuloma is not a Lung Lesion (nodules and masses are), sternotomy wires and surgical clips are
not Support Devices (tubes, lines, catheters, cardiac devices, stents and valves are), and
pulmonary vascular congestion is Edema.
NOTE: these choices aim at the scope of the CheXpert labels but were not compared with the
CheXpert labeler's own phrase files. Each pattern is wrapped in word guards when compiled, so
``effusions?`` matches "effusion" and "effusions" only as whole words.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObservationPhrases:
    """Phrases that mention one observation in a report.

    ``mentions`` name the finding itself ("cardiomegaly"). ``uncertain_mentions`` name a sign that
    suggests it without proving it ("blunting of the costophrenic angle" for an effusion).
    ``subjects`` name an anatomical part whose ``enlarged``, ``normal`` or ``borderline``
    descriptor decides the label ("heart size is normal" is a negative Cardiomegaly). A match
    that overlaps an ``exclusions`` match is not a mention ("pericardial effusion").
    """

    name: str
    mentions: tuple[str, ...] = ()
    uncertain_mentions: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    enlarged: tuple[str, ...] = ()
    normal: tuple[str, ...] = ()
    borderline: tuple[str, ...] = ()
    exclusions: tuple[str, ...] = ()


_SIZE_NORMAL = (
    r"normal(?:ly)?(?: in)?(?: size| caliber| contour| appearance| configuration)?",
    r"(?:within|at|in) (?:the )?normal limits?",
    r"(?:size )?(?:is |are )?unremarkable",
    r"normal-sized|normal sized|normal size",
)
_SIZE_BORDERLINE = (
    r"borderline(?: enlarged| enlargement| in size| size| normal)?",
    r"(?:at |the )?upper limits? of normal",
    r"upper (?:range of )?normal",
    r"top(?: of)?(?: the)? normal",
    r"high normal",
)
_PLEURAL_EFFUSION_LIKE = r"(?:pleural )?effusions?"

PHRASES: tuple[ObservationPhrases, ...] = (
    ObservationPhrases(
        name="Enlarged Cardiomediastinum",
        mentions=(
            r"(?:widening|prominence|enlargement) of (?:the )?(?:superior )?mediastin(?:um|al silhouette|al contours?)",
            r"(?:widened|wide|prominent|enlarged) (?:superior )?mediastin(?:um|al silhouette|al contours?)",
            r"mediastinal (?:widening|enlargement|prominence)",
            r"enlarged cardiomediastin\w*",
        ),
        subjects=(
            r"(?:cardio ?|cardiac )?mediastinal (?:silhouettes?|contours?|structures|shadow|width|borders?)",
            r"cardiomediastinal (?:silhouettes?|contours?|structures|shadow|borders?)",
            r"mediastinum",
        ),
        enlarged=(r"(?:is |are )?(?:mildly |moderately |markedly |slightly )?(?:enlarged|widened|wide|prominent)",),
        normal=_SIZE_NORMAL,
        borderline=(),
    ),
    ObservationPhrases(
        name="Cardiomegaly",
        mentions=(r"cardiomegaly", r"cardiac enlargement", r"enlargement of the (?:heart|cardiac silhouette)"),
        subjects=(
            r"heart(?: size| shadow| silhouette)?",
            r"cardiac (?:silhouette|size|shadow|contours?|diameter|dimensions)",
        ),
        enlarged=(
            r"(?:mildly |moderately |markedly |severely |slightly |massively )?(?:enlarged|large|increased)",
            r"(?:mild|moderate|marked|severe) enlargement",
        ),
        normal=_SIZE_NORMAL,
        borderline=_SIZE_BORDERLINE,
    ),
    ObservationPhrases(
        name="Lung Opacity",
        mentions=(
            r"opaci(?:ty|ties|fication|fications|fied)",
            r"infiltrat(?:e|es|ion|ions)",
            r"air ?space (?:disease|process|opacit(?:y|ies))",
            r"densit(?:y|ies)",
            r"hazy|haziness",
            r"ground[- ]?glass",
            r"reticul(?:ar|onodular) (?:markings|pattern|opacit(?:y|ies)|changes)",
        ),
        exclusions=(
            r"(?:bone|bony|osseous|mineral|breast|soft tissue|nipple|sclerotic|calcified|calcific) densit(?:y|ies)",
            r"densit(?:y|ies) (?:of|in) the (?:bones?|spine|vertebra\w*|ribs?|breasts?)",
            r"nodular (?:opaci\w+|densit(?:y|ies))",
        ),
    ),
    ObservationPhrases(
        name="Lung Lesion",
        mentions=(
            r"nodul(?:e|es)",
            r"nodular (?:opaci\w+|densit(?:y|ies)|lesions?)",
            r"mass(?:es)?",
            r"(?:pulmonary|lung|cavitary|parenchymal|spiculated) lesions?",
            r"tumou?rs?|neoplasms?|carcinoma|malignan(?:cy|t)",
            r"(?:pulmonary |lung )?metasta(?:sis|ses|tic disease)",
            r"cavitation|cavitary",
            r"lump",
        ),
        exclusions=(
            r"mass effect",
            r"(?:muscle|body|bone|soft tissue|breast|neck|thyroid|abdominal|mediastinal) mass(?:es)?",
            r"(?:osseous|bony|bone|skeletal) metasta\w*",
        ),
    ),
    ObservationPhrases(
        name="Edema",
        mentions=(
            r"edema",
            r"(?:pulmonary |vascular |venous |interstitial )congestion",
            r"(?:congestive )?(?:heart|cardiac) failure|chf",
            r"fluid overload",
            r"cephalization",
            r"kerley b? ?lines",
            r"(?:pulmonary )?vascular (?:engorgement|redistribution)",
        ),
        exclusions=(r"(?:soft tissue|subcutaneous|chest wall) edema",),
    ),
    ObservationPhrases(name="Consolidation", mentions=(r"consolidat(?:ion|ions|ive|ed)",)),
    ObservationPhrases(
        name="Pneumonia",
        mentions=(r"(?:broncho)?pneumonias?", r"pneumonitis", r"infections?", r"infectious (?:process|etiology)"),
        exclusions=(r"(?:old |prior |previous |healed )?granulomatous (?:infections?|disease)",),
    ),
    ObservationPhrases(
        name="Atelectasis",
        mentions=(r"atelecta(?:sis|ses|tic)", r"(?:lung|lobar|lobe|segmental) collapse", r"collapsed? (?:lung|lobe)"),
    ),
    ObservationPhrases(
        name="Pneumothorax",
        mentions=(r"(?:hydro|hemo)?pneumothora(?:x|ces|xes)",),
    ),
    ObservationPhrases(
        name="Pleural Effusion",
        mentions=(_PLEURAL_EFFUSION_LIKE, r"pleural fluid", r"hydrothorax", r"hydropneumothorax"),
        uncertain_mentions=(
            r"blunt(?:ed|ing)(?: of)?(?: the)?(?: \w+){0,2}(?: costophrenic| cp)(?: angles?| sulc(?:us|i)| recess(?:es)?)?",
            r"(?:costophrenic|cp) (?:angles?|sulc(?:us|i)) (?:is |are )?(?:\w+ )?blunt(?:ed|ing)",
        ),
        exclusions=(r"(?:pericardial|joint|subpulmonic pericardial) effusions?",),
    ),
    ObservationPhrases(
        name="Pleural Other",
        mentions=(
            r"pleural (?:thickening|plaques?|calcifications?|scarring|scar|fibrosis|reaction)",
            r"pleural[- ](?:parenchymal|based) (?:scarring|thickening|opaci\w+|densit(?:y|ies))",
            r"thickening of the pleura",
            r"fibrothorax",
            r"apical (?:pleural )?(?:cap|capping|thickening)",
            r"calcified pleura\w*",
        ),
    ),
    ObservationPhrases(name="Fracture", mentions=(r"fractur(?:e|es|ed)",)),
    ObservationPhrases(
        name="Support Devices",
        mentions=(
            r"(?:endotracheal|et|tracheostomy|chest|nasogastric|ng|orogastric|og|feeding|enteric|gastric|"
            r"thoracostomy|pleural|drainage|dobhoff|jejunostomy|gastrostomy) tubes?",
            r"(?:central venous|central|venous|picc|arterial|dialysis|swan[- ]ganz|subclavian|jugular) "
            r"(?:lines?|catheters?)",
            r"picc|catheters?|port-a-cath|portacath|mediport|(?:chest|power|infusion|venous) ports?",
            r"pacemakers?|pacers?|defibrillators?|aicd|icd|(?:pacing|pacer|pacemaker|cardiac|transvenous) "
            r"(?:leads?|wires?|generator)",
            r"stents?|(?:prosthetic|mechanical|replaced|bioprosthetic) (?:aortic |mitral )?valves?",
            r"(?:aortic|mitral) valve (?:replacement|prosthesis)",
            r"(?:chest |pleural |surgical )?drains?",
            r"loop recorder|neurostimulator|(?:nerve|spinal|spinal cord) stimulator|(?:cardiac |implanted |support )devices?",
            r"tracheostomy|(?:pulse |battery )generator|(?:monitor(?:ing)?|ecg|ekg|telemetry) leads",
            r"(?:lines?|tubes?) and (?:lines?|tubes?)",
        ),
        exclusions=(r"catheter tip (?:in|within) the (?:abdomen|pelvis)",),
    ),
)

# Words that negate a mention that follows them.
PRE_NEGATION = (
    r"no",
    r"not",
    r"without",
    r"negative for",
    r"free of",
    r"clear of",
    r"absence of",
    r"resolution of",
    r"resolved",
    r"removal of",
    r"neither",
    r"nor",
    r"rather than",
    r"no longer",
    r"interval clearing of",
)
# Phrases that negate a mention shortly before them: "effusion is not seen", "tube was removed".
POST_NEGATION = (
    r"(?:is |are |was |were |has been |have been )?(?:not|no longer) (?:clearly |definitely |well )?"
    r"(?:seen|identified|visualized|visible|present|evident|appreciated|demonstrated|detected|noted|apparent)",
    r"(?:has |have )?(?:resolved|cleared|disappeared)",
    r"(?:has |have )?(?:been )?removed",
    r"(?:is |are )?absent",
    r"(?:has |have )?(?:been )?ruled out",
    r"(?:is |are )?(?:not|no longer) (?:enlarged|widened|increased)",
)
# Negation words that do not negate: "no change in the effusion" keeps the effusion positive.
PSEUDO_NEGATION = (
    r"no (?:significant |interval |appreciable |substantial |definite |significant interval )?"
    r"(?:change|increase|decrease|worsening|improvement|progression|enlargement)",
    r"without (?:significant |interval )?(?:change|increase|worsening|progression)",
    r"not (?:significantly )?(?:changed|increased|improved|worsened)",
    r"gram[- ]negative",
)
# Phrases that contain a negation word but express uncertainty. They take precedence over negation.
NEGATED_UNCERTAINTY = (
    r"(?:cannot|can not|can't|could not|couldn't|may not|might not) (?:be )?(?:entirely |completely |totally |"
    r"definitely )?(?:exclude|excluded|rule out|ruled out)",
    r"not (?:be )?(?:entirely |completely |totally |definitely )?(?:excluded|ruled out)",
    r"(?:difficult|hard|impossible) to (?:exclude|rule out)",
    r"no (?:definite |convincing )?(?:evidence )?(?:to exclude|to rule out)",
)
# Words that make a mention that follows them uncertain.
PRE_UNCERTAINTY = (
    r"may|might|could",
    r"possib(?:le|ly|ility of)",
    r"probabl[ey]",
    r"(?:un)?likely",
    r"suspect(?:ed|s)?|suspicio(?:us|n) (?:for|of)",
    r"concern(?:ing)? (?:for|of)|worrisome for",
    r"question(?:able|ably)?|question of|questioned",
    r"equivocal|indeterminate|borderline",
    r"suggest(?:s|ed|ing|ive)?(?: of)?|suggestion of",
    r"differential(?: diagnosis)?(?: includes)?",
    r"versus|vs",
    r"presum(?:ed|ably|ptive)",
    r"potential(?:ly)?",
    r"evaluat(?:e|ion) for|(?:to )?rule out|r/o|(?:to )?exclude",
)
# Phrases that make a mention shortly before them uncertain: "pneumonia is suspected".
POST_UNCERTAINTY = (
    r"(?:is |are |was |were )?(?:possible|suspected|questioned|considered|favored|not excluded)",
    r"(?:is |are )(?:likely|unlikely|probable)",
    r"versus|vs",
    r"(?:cannot|can not|could not) be (?:entirely |completely )?(?:excluded|ruled out)",
)
# Words that end the scope of a negation or uncertainty trigger inside a sentence.
SCOPE_TERMINATORS = (
    r"but",
    r"however",
    r"although|though|whereas|while|yet",
    r"aside from|apart from|except(?: for)?|other than",
    r"which|that is",
    r"with",
    r"there (?:is|are|has|have|was|were)",
    r"and (?:the|there)",
    r"otherwise",
    # A comma that starts a new clause with its own verb: "no effusion, the heart is enlarged".
    r",(?=\s+(?!or\b|and\b|nor\b)[a-z]+(?:\s+[a-z]+)?\s+(?:is|are)\b)",
)
