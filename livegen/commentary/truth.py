"""Does a sentence tell the truth about the music? Its claims, found by word lists, judged against
what was heard (``attributes.hear``) and the instruments the take plays (General MIDI programs).

A claim is true only when the music confidently supports it: a pace, dynamics, register, mode,
density or texture word is true when that reading is sure and has that value, and false when the
reading has another value or is unsure (the commentary claims nothing it is unsure of). An
instrument is true when a program of its General MIDI family plays (drums: channel 10, or the
percussive programs); a singer, lyrics or rapping are always false (a take is instrumental), a
choir is true only on the choir and voice programs. Sounds that are not notes (a crowd, rain,
speech), recording quality and studio effects are always false: nothing in the notes says so, and
genres that need a drum kit (rock, hip hop, EDM, ...) are drum claims. A negated mention ("no
drums") still counts as the claim: a sentence about what is absent says nothing true of the music.

Mood and genre words the notes cannot check ("emotional", "pop") are neither true nor false; mood
words that say a pace or a loudness are claims of it ("energetic" is fast, "gentle" is soft).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from livegen.commentary.attributes import Reading
from livegen.music.events import Note

# (what the claim is about, the value it claims, the words that claim it: a regex over lower-case text)
SCALE_CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("pace", "slow", r"slow|slowly|slower|slowed|laid[- ]back|leisurely|unhurried|languid|lazy|sluggish|"
                     r"dragging|lethargic"),
    ("pace", "medium", r"medium|moderate|moderately|mid[- ]tempo|midtempo|medium[- ]paced|steady pace"),
    ("pace", "fast", r"fast|faster|quick|quickly|rapid|rapidly|up[- ]?tempo|energetic|frantic|lively|upbeat|"
                     r"brisk|hurried|racing|speedy|swift|bouncy|danceable"),
    ("dynamics", "soft", r"soft|softly|softer|quiet|quietly|gentle|gently|delicate|delicately|calm|calming|"
                         r"tender|tenderly|hushed|subdued|muted|mellow|soothing|peaceful|serene|relaxing|"
                         r"relaxed|subtle|subtly|faint|whisper\w*"),
    ("dynamics", "loud", r"loud|loudly|louder|powerful|powerfully|forceful|heavy|heavily|intense|aggressive|"
                         r"thunderous|booming|pounding|bombastic|fierce|explosive|punchy|hard[- ]hitting|blaring"),
    ("register", "high", r"high[- ]pitched|high (?:register|notes?|range|pitch(?:es)?|octaves?)|higher "
                         r"(?:register|notes?|range|octaves?)|upper (?:register|range|notes?)|treble|soprano"),
    ("register", "low", r"low[- ]pitched|low (?:register|notes?|range|end|pitch(?:es)?|octaves?)|lower "
                        r"(?:register|notes?|range|octaves?)|deep|deeper|bass (?:notes?|register|range|clef|end)|"
                        r"rumbl\w*|baritone"),
    ("mode", "major", r"major"),
    ("mode", "minor", r"minor"),
    ("density", "busy", r"busy|dense|densely|complex|intricate|virtuos\w*|flurr\w*|cascad\w*|rapid[- ]fire|"
                        r"showy|elaborate|ornate"),
    ("density", "sparse", r"sparse|sparsely|minimal|minimalist\w*|simple|simply|spare|few notes|stripped[- ]down|"
                          r"bare"),
    ("texture", "chords", r"chords?|chordal|harmon(?:y|ies|ised|ized|ising|izing)|triads?"),
    ("texture", "line", r"single[- ]line|single[- ]notes?|one note at a time|monophonic|unaccompanied|"
                        r"lone melody|melody alone|solo melody|single melody"),
)

ALWAYS = range(0)  # no program makes these claims true
# (name, the General MIDI programs that make it true, the words); drums are also true on channel 10
INSTRUMENT_CLAIMS: tuple[tuple[str, range | tuple[int, ...], str], ...] = (
    ("piano", range(0, 8), r"pianos?|pianist|keyboards?|keyboardist|e-piano|rhodes|harpsichord|clavinet|"
                           r"clavichord|honky[- ]tonk"),
    ("chromatic percussion", range(8, 16), r"celesta|glockenspiel|music box|vibraphone|vibes|marimba|xylophone|"
                                           r"bells?|chimes?|dulcimer|mallets?"),
    ("organ", range(16, 21), r"organs?|organist"),
    ("accordion", (21, 23), r"accordions?|bandoneon|concertina|melodica"),
    ("harmonica", (22,), r"harmonicas?|harp blues"),
    ("guitar", range(24, 32), r"guitars?|guitarist|guitarists|e-guitars?|strum\w*|ukuleles?|mandolins?|lute|"
                              r"riffs?|riffing|power chords?"),
    ("steel", (25, 114), r"steel"),
    ("bass", range(32, 40), r"bass(?:es|ist|ists)?(?! (?:notes?|register|range|clef|end|drums?|frequenc\w*))|"
                            r"basslines?|e-bass|double bass|upright bass|slap"),
    ("strings", (*range(40, 52), 55, 110), r"violins?|violinist|violas?|cellos?|cellist|fiddles?|fiddler|"
                                           r"contrabass|strings|string (?:section|ensemble|quartet|orchestra)|"
                                           r"orchestra\w*|pizzicato|bowed"),
    ("harp", (46,), r"harps?|harpist"),
    ("timpani", (47,), r"timpani|kettle ?drums?"),
    ("choir", range(52, 55), r"choir|choral|choirs|voices|humming|hums|oohs?|aahs?|chant\w*"),
    ("singer", ALWAYS, r"vocals?|vocalists?|vocalist's|singers?|singer's|sing|sings|singing|sung|lyrics?|lyrical|"
                       r"rapp\w*|raps?|verses?|crooning|croons|falsetto|voice|backing vocals|duet|a cappella|"
                       r"male|female|man|men|woman|women|girls?|boys?|child|children|kids?|people|person|she|he|her|him"),
    ("brass", range(56, 64), r"brass|trumpets?|trumpeter|trombones?|tubas?|horns?|flugelhorn|cornet|bugle"),
    ("reed", range(64, 72), r"sax|saxes|saxophones?|saxophonist|clarinets?|oboes?|bassoons?|reeds?"),
    ("pipe", range(72, 80), r"flutes?|flutist|flautist|piccolo|recorders?|pan ?flutes?|pan ?pipes|ocarina|"
                            r"shakuhachi|whistl\w*"),
    ("woodwinds", range(64, 80), r"woodwinds?|wind|winds|wind instruments?"),
    ("synth", range(80, 104), r"synth\w*|electronic|electronica|pads?|arpeggiator|808|theremin|sampler|samples?|"
                              r"sampled|programmed|vocoder|auto-?tune|drum machine"),
    ("ethnic", range(104, 112), r"sitars?|banjos?|shamisen|koto|kalimba|mbira|bagpipes?|shehnai|shanai|erhu|oud|"
                                r"bouzouki|didgeridoo|guzheng|pipa|santoor|duduk|veena|sarod|balalaika|singing bowls?|bowls?"),
    ("drums", range(112, 120), r"drums?|drummer|drumming|drumbeat|percussion\w*|percussive|snares?|kicks?|"
                               r"hi[- ]?hats?|cymbals?|crash|toms?|tambourines?|shakers?|claps?|handclaps?|"
                               r"clapping|snap\w*|congas?|bongos?|tabla|djembe|cajon|timbales|cowbell|woodblocks?|"
                               r"triangle|rimshots?|groove|grooves|groovy|backbeat|breakbeat|"
                               r"rock|metal|punk|hip[- ]?hop|edm|techno|dubstep|trance|house music|disco|reggae|"
                               r"trap|drum and bass|grunge|funk|funky"),
    ("sounds that are not notes", ALWAYS, r"applause|crowd|audience|cheer\w*|footsteps|birds?|chirp\w*|rain|"
                                          r"thunder|speech|speaking|talking|spoken|narrat\w*|dialogue|laugh\w*|"
                                          r"noise|noisy|static|hiss\w*|crackl\w*|sirens?|sound effects?|"
                                          r"baby|dogs?|water|ocean|waves|room sounds?|ambient sounds?|ambience|tapping|doors?|click\w*|"
                                          r"squeak\w*|knock\w*|bang\w*|creak\w*|vibrations?|wood|wooden"),
    ("recording", ALWAYS, r"(?:low|poor|bad|amateur) (?:audio |sound |recording )?quality|amateur|muffled|mono|"
                          r"home video|video|youtube|tutorial|mp3|radio|reverb\w*|echo\w*|delay|distort\w*|"
                          r"wah|flanger|phaser|sidechain\w*|fades? (?:in|out)|live (?:performance|recording)|stereo|panned"),
)
SPECIFIC = ("pace", "dynamics", "register", "mode", "density", "texture", "instrument")
_SCALES = [(about, value, re.compile(rf"\b(?:{words})\b")) for about, value, words in SCALE_CLAIMS]
_INSTRUMENTS = [(name, programs, re.compile(rf"\b(?:{words})\b")) for name, programs, words in INSTRUMENT_CLAIMS]
_FAMILIES = {name: programs for name, programs, _ in INSTRUMENT_CLAIMS}


@dataclass(frozen=True)
class Heard:
    """What a sentence is judged against: the readings of a window and the take's instruments."""
    readings: dict[str, Reading]
    programs: tuple[int, ...] = (0,)
    drums: bool = False


@dataclass(frozen=True)
class Claim:
    about: str  # "pace", "dynamics", "register", "mode", "density", "texture" or "instrument"
    value: str  # "slow", "minor", "guitar", ...
    words: str  # what in the sentence made it
    true: bool
    why: str  # "heard slow (0.92)", "heard medium (0.81)", "not playing", ...

    def to_json(self) -> dict:
        return {"about": self.about, "value": self.value, "words": self.words, "true": self.true, "why": self.why}


def find(sentence: str) -> list[tuple[str, str, str]]:
    """(about, value, words) of every claim in ``sentence``, not yet judged; an instrument's value is its name."""
    text = sentence.lower()
    found = [(about, value, m.group(0)) for about, value, rx in _SCALES for m in rx.finditer(text)]
    return found + [("instrument", name, m.group(0)) for name, _, rx in _INSTRUMENTS for m in rx.finditer(text)]


def verdict(about: str, value: str, heard: Heard) -> tuple[bool, str]:
    """(true, why) of one claim against what was heard."""
    if about == "instrument":
        true = bool(set(heard.programs) & set(_FAMILIES[value])) or (value == "drums" and heard.drums)
        return true, "playing" if true else "not playing"
    r = heard.readings.get(about)
    if r is None:
        return False, "not heard"
    return r.value == value and r.sure, f"heard {r.value} ({r.confidence:.2f}{'' if r.sure else ', unsure'})"


def claims(sentence: str, heard: Heard) -> list[Claim]:
    """Every claim in ``sentence`` and its verdict against the readings and the playing programs."""
    return [Claim(about, value, words, *verdict(about, value, heard)) for about, value, words in find(sentence)]


def judge(sentence: str, heard: Heard) -> tuple[list[Claim], list[Claim]]:
    """(false claims, true claims) of a sentence."""
    found = claims(sentence, heard)
    return [c for c in found if not c.true], [c for c in found if c.true]


def informative(true_claims: list[Claim]) -> float:
    """How much true and specific a sentence says: one per attribute it gets right beyond the
    instrument, half for the instrument (every take has one, so naming it says less)."""
    kinds = {c.about for c in true_claims}
    return len(kinds - {"instrument"}) + 0.5 * ("instrument" in kinds)


# contrasting takes of one piece the checker is measured on (``livegen eval --midi``, ``livegen bench``):
# (name, time stretch, velocity map, transposition)
TAKES = (("as played", 1.0, lambda v: v, 0),
         ("slow soft low", 2.2, lambda v: v * 0.45, -12),
         ("fast loud high", 0.6, lambda v: 100 + v * 0.2, 12))


def variant(notes: list[Note], stretch: float, velocity, shift: int) -> list[Note]:
    """The same notes slower or faster, softer or louder, lower or higher (kept on the piano's keys)."""
    return [Note(n.start * stretch, n.end * stretch, n.pitch + shift, int(min(127, max(1, velocity(n.velocity)))))
            for n in notes if 21 <= n.pitch + shift <= 108]
