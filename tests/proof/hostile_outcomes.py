"""What each hostile message of `tests.proof.builders.hostile_mails()` must end as.

An outcome is the classification of the inbound message, the kinds of the replies queued
for it, and — when it opened an application — the exact problem codes of that application
(the problem reply is rendered from them). Rules, not a snapshot: a file from the corpus
must give the codes the corpus names for it (`Hostile.codes`), a zip adds the document it
lacks, a name is judged by its extension and never by its path, and so on below.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mailbot.parsers.problems import ProblemCode as C
from tests.corpus import hostile
from tests.proof.builders import TRAVERSAL_NAMES

CASES = {c.name: c for c in hostile.CASES}


@dataclass(frozen=True)
class Outcome:
    """`codes`: the application's problem codes as a multiset; None: no application."""

    kind: str
    replies: tuple[str, ...] = ()
    codes: Counter[str] | None = None


def problems(*codes: C) -> Outcome:
    return Outcome("application", ("problems",), Counter(c.value for c in codes))


INSTRUCTIONS = Outcome("unknown_sender", ("instructions",))  # no form attached: the blanks
INVOICE = Outcome("application", ("invoice",), Counter())
NO_SENDER = Outcome("automatic")  # nobody to answer
# Headers past a [limits] bound are never parsed: quarantined with the reason (issue 15),
# the sender told which limit when the raw lines name one sender, else nobody answered.
REFUSED = Outcome("unreadable", ("unreadable",))
REFUSED_UNANSWERED = Outcome("unreadable")
# The pipeline takes the form as .docx and the list as .xlsx/.xls/.ods/.csv, by extension:
# a .docm, .xlsm or .doc is «a file we cannot read» and its document counts as missing.
NOT_TAKEN_EXTS = (".docm", ".xlsm", ".doc")
# A zip the pipeline refuses whole (a member it does not take, or one that compresses more
# than ZIP_MAX_RATIO, i.e. a bomb): the zip is unreadable and both documents are missing.
ZIP_REFUSED = problems(C.file_wrong_format, C.file_missing, C.file_missing)
ZIP_MEMBER_REFUSED = {"macros.docm", "macros.xlsm", "old-word.doc", "huge-field.csv"}
# Corpus files that must be read safely are product lists; the sample form asks for five
# barcodes, these lists hold another number of rows: that, and only that, is reported.
READ_SAFELY = problems(C.barcode_count_mismatch)

MESSAGE_SHAPES = {
    "nested-multipart-200": INSTRUCTIONS,  # the text part is found, no form
    "header-line-2mb": REFUSED,  # a 2 MB header: over max_header_block_bytes
    # the form is found whatever the boundary trouble, or no part at all is
    "boundary-unterminated": problems(C.file_missing),
    "boundary-no-boundary-param": INSTRUCTIONS,
    "boundary-mismatched": INSTRUCTIONS,
    "boundary-empty-boundary": problems(C.file_missing),
    "boundary-unquoted-spaces": INSTRUCTIONS,
    "boundary-unterminated-quote": problems(C.file_missing),
    "boundary-boundary-in-body": problems(C.file_missing),
    "boundary-70-char-limit": problems(C.file_missing),
    "boundary-bad-base64": problems(C.file_wrong_format, C.file_missing),
    "boundary-no-headers-part": INSTRUCTIONS,
    # CR/LF in a header: answered with the blanks (no form), or the invoice (forms valid)
    "inject-subject-with-forms-encoded-b": INVOICE,
    "inject-subject-with-forms-encoded-q": INVOICE,
    "inject-from-name-bare-cr": NO_SENDER,  # a bare CR ends the From line before its address
    "inject-filename-crlf": INSTRUCTIONS,  # the broken name hides the attachment
    "inject-filename-lf": INSTRUCTIONS,
    "inject-filename-encoded": problems(C.file_wrong_format, C.file_missing),  # "not a docx"
    "inject-form-E-mail": problems(C.email_invalid),  # the other fields are free text
    "odd-empty": NO_SENDER,
    "odd-only-newlines": NO_SENDER,
    "odd-garbage": NO_SENDER,
    "odd-no-from": NO_SENDER,
    "odd-eight-bit-headers": INSTRUCTIONS,
    "odd-unknown-charset": INSTRUCTIONS,
    "odd-bad-rfc2231": INSTRUCTIONS,
    "odd-many-from": REFUSED_UNANSWERED,  # over max_headers, and no single From to answer
    "odd-rfc822-loop": INSTRUCTIONS,
    "odd-huge-text": INSTRUCTIONS,
    "odd-message-id-flood": REFUSED,  # over max_header_block_bytes
    "odd-zip-bomb-attachment": ZIP_REFUSED,
    "odd-zip-of-many": ZIP_REFUSED,
}


def _file(case: hostile.Hostile) -> Outcome:
    """The corpus file in place of its document, the other document valid."""
    if case.name == "too-large.docx":  # over the message size limit: the headers only
        return Outcome("oversized", ("oversized",))
    if case.name.endswith(NOT_TAKEN_EXTS):
        return problems(C.file_wrong_format, C.file_missing)
    return problems(*case.codes) if case.codes else READ_SAFELY


def _zipped(case: hostile.Hostile) -> Outcome:
    """The corpus file alone in a zip: its own codes, and the other document missing."""
    if case.name in ZIP_MEMBER_REFUSED:
        return ZIP_REFUSED
    return problems(*case.codes, C.file_missing)


def _traversal(name: str) -> Outcome:
    """A valid document under a traversal name: judged by the extension, the path ignored."""
    kind, _, i = name.removeprefix("traversal-").rpartition("-")
    ext = TRAVERSAL_NAMES[int(i)].rsplit(".", 1)[-1]  # "/etc/passwd" for "../../etc/passwd"
    if kind == "":  # the form (.docx bytes) under the name
        return {
            "docx": problems(C.file_missing),  # taken as the form; the list is missing
            "xlsx": problems(C.file_missing, C.file_wrong_format),  # a form is no list
        }.get(ext, INSTRUCTIONS)
    if kind == "2231":  # the product list (.xlsx bytes) under the name
        return {
            "docx": problems(C.file_wrong_format, C.file_missing),
            "xlsx": problems(C.file_missing),
        }.get(ext, INSTRUCTIONS)
    # zip: the form under the name, beside a valid Перечень.xlsx; zipfile ends a member's
    # name at a NUL, so "Заявление\x00../../x.docx" is a member without an extension
    ext = TRAVERSAL_NAMES[int(i)].split("\x00")[0].rsplit(".", 1)[-1]
    return {
        "docx": INVOICE,
        # two lists, neither of which reads as one — see the report of issue 14
        "xlsx": problems(C.file_wrong_format, C.file_wrong_format, C.file_missing),
    }.get(ext, problems(C.file_missing))


def expected(name: str) -> Outcome | None:
    """The outcome `name` must end as; None for the truncations (see `truncation_problems`)."""
    if name in MESSAGE_SHAPES:
        return MESSAGE_SHAPES[name]
    if name.startswith("file-"):
        return _file(CASES[name.removeprefix("file-")])
    if name.startswith("zipped-"):
        return _zipped(CASES[name.removeprefix("zipped-")])
    if name.startswith("traversal-"):
        return _traversal(name)
    if name.startswith(("inject-from-name-", "inject-subject-")):
        return INSTRUCTIONS
    if name.startswith("inject-form-"):
        return INVOICE
    if name == "attachments-5000" or name.startswith("truncated-"):
        return None
    raise KeyError(f"no expected outcome for hostile mail {name!r}")


# A message cut short: the document the cut falls in cannot be read, any document after the
# cut is missing. Where the cut lands in a zip decides between «damaged» and «not the
# format», and a sheet cut near its end reads without its header row.
UNREADABLE = {C.file_damaged.value, C.file_wrong_format.value, C.header_not_found.value}
MISSING = C.file_missing.value


def ruled_problems(name: str, reason: str, codes: Counter[str]) -> list[str]:
    """For a mail `expected` gives None: what is wrong with its problem codes (empty: right).

    `reason` is the inbound row's classification reason, which lists the attachments seen.
    """
    wrong = []
    if set(codes) - UNREADABLE - {MISSING}:
        wrong.append(f"unexpected codes {dict(codes)}")
    if name == "attachments-5000":  # 5000 one-byte «.xlsx» files: none is a list, no form
        if codes[MISSING] != 1 or not set(codes) & UNREADABLE:
            wrong.append(f"not «form missing, lists unreadable»: {dict(codes)}")
        return wrong
    seen_list = ".xlsx" in reason
    if sum(codes[c] for c in UNREADABLE) != 1:
        wrong.append(f"not exactly one unreadable document: {dict(codes)}")
    if codes[MISSING] != (0 if seen_list else 1):
        wrong.append(f"the list is {'there' if seen_list else 'cut off'}: {dict(codes)}")
    return wrong
