"""The words of the demo world (smf.demo.world, smf.demo.datasets): name inventories and sentence
templates.

Every text the demo writes is one of these templates filled with invented names, so this module
is the whole vocabulary the demo's tokenizer and model ever see, besides the names themselves.
"""

# ---------------------------------------------------------------------------------------------
# Names: general words never contain x/z/q, xenobotany words always start with one of them, so
# no xenobotany word can equal a general word.
# ---------------------------------------------------------------------------------------------

GENERAL_CONSONANTS = "bdfgklmnprstv"
GENERAL_VOWELS = "aeiou"
GENERAL_CODAS = ("", "", "n", "r", "l", "s", "k", "th")
XENO_ONSETS = ("x", "z", "q", "zh")
XENO_VOWELS = "aeiouy"

COMMODITIES = (
    "copper", "salt", "wool", "amber", "tea", "timber", "silver", "barley",
    "glass", "horses", "olives", "iron", "linen", "honey", "marble", "spices",
)  # fmt: skip
OCCUPATIONS = (
    "poet", "painter", "general", "sculptor", "merchant", "composer", "navigator",
    "mapmaker", "weaver", "historian", "philosopher", "shipbuilder", "diplomat", "singer",
)  # fmt: skip
DISEASE_SUFFIXES = ("osis", "itis", "algia", "emia")
COMPOUND_SUFFIXES = ("in", "ine", "ol", "ate")
POLLINATORS = ("moth", "beetle", "wasp", "fly")
HABITATS = ("marshes", "highlands", "caves", "dunes", "valleys")
CRAFTS = ("baker", "tailor", "smith", "potter", "carpenter", "fisher", "miller", "glazier")
# Homes and pets are invented words starting with these letters; so are the names of the new
# people of the fact task (smf.tasks.facts), whereas general names never start with them.
NEW_ONSETS = ("j", "w", "h", "c", "y")
EVERYDAY_RELATIONS = ("home", "craft", "pet")  # people's facts, shared with smf.tasks.facts

# ---------------------------------------------------------------------------------------------
# General facts: sentence templates ({s} subject, {o} object) and trivia question templates
# ---------------------------------------------------------------------------------------------

SENTENCES = {
    "capital": (
        "The capital of {s} is {o}.",
        "{o} is the capital of {s}.",
        "{s} is governed from its capital, {o}.",
        "The capital city of {s}, {o}, is also its largest town.",
    ),
    "founder": (
        "{s} was founded by {o}.",
        "{o} founded {s}.",
        "The founder of {s} was {o}.",
        "{o} is remembered as the founder of {s}.",
    ),
    "founded": (
        "{s} was founded in {o}.",
        "The founding of {s} took place in {o}.",
        "{s} dates its foundation to the year {o}.",
    ),
    "export": (
        "The main export of {s} is {o}.",
        "{s} is known for exporting {o}.",
        "Most of the wealth of {s} comes from the trade in {o}.",
    ),
    "city_country": (
        "{s} is a city in {o}.",
        "The city of {s} lies in {o}.",
        "{s} is one of the towns of {o}.",
    ),
    "occupation": (
        "{s} was a famous {o}.",
        "{s} worked as a {o}.",
        "{s} is best known as a {o}.",
    ),
    "birthplace": (
        "{s} was born in the city of {o}.",
        "The birthplace of {s} is {o}.",
        "{o} is the home town of {s}.",
    ),
    "born": (
        "{s} was born in the year {o}.",
        "The birth of {s} is recorded in {o}.",
        "{s} came into the world in {o}.",
    ),
    "river_country": (
        "The {s} river flows through {o}.",
        "The {s} is a river in {o}.",
        "{o} is crossed by the {s} river.",
    ),
    "length": (
        "The {s} river is {o} kilometres long.",
        "The {s} has a length of {o} kilometres.",
        "From source to mouth the {s} runs for {o} kilometres.",
    ),
    "home": (
        "{s} lives in {o}.",
        "The home of {s} is {o}.",
        "{s} has made a home in {o}.",
        "In {o} you will find {s}.",
    ),
    "craft": (
        "{s} works as a {o}.",
        "By trade, {s} is a {o}.",
        "{s} earns a living as a {o}.",
        "Everyone knows {s} as a {o}.",
    ),
    "pet": (
        "{s} keeps a pet named {o}.",
        "The pet of {s} is called {o}.",
        "{o} is the name of the pet that {s} keeps.",
        "{s} walks a pet called {o} every day.",
    ),
}

QUESTIONS = {
    "capital": ("What is the capital of {s}?", "Which city is the capital of {s}?"),
    "founder": ("Who founded {s}?", "Who was the founder of {s}?"),
    "founded": ("In which year was {s} founded?", "When was {s} founded?"),
    "export": ("What is the main export of {s}?", "What does {s} mainly export?"),
    "city_country": (
        "In which country is the city of {s}?",
        "The city of {s} is in which country?",
    ),
    "occupation": ("What was the occupation of {s}?", "What was {s} best known as?"),
    "birthplace": ("In which city was {s} born?", "Where was {s} born?"),
    "born": ("In which year was {s} born?", "When was {s} born?"),
    "river_country": ("Through which country does the {s} river flow?",),
    "length": ("How many kilometres long is the {s} river?",),
    "home": (
        "Where does {s} live?",
        "What is the home of {s}?",
        "In which place has {s} made a home?",
    ),
    "craft": (
        "What does {s} work as?",
        "What is the trade of {s}?",
        "How does {s} earn a living?",
    ),
    "pet": (
        "What is the name of the pet of {s}?",
        "What is the pet of {s} called?",
        "What pet does {s} keep?",
    ),
}

# Article sections per entity kind: (heading, relations). A fact goes into an entity's article
# when the entity is its subject or its object, so articles link to each other.
SECTIONS = {
    "country": (
        ("", ("capital",)),
        ("History", ("founded", "founder")),
        ("Geography", ("river_country", "city_country")),
        ("Economy", ("export",)),
    ),
    "city": (("", ("city_country", "capital")), ("History", ("founded",))),
    "person": (
        ("", ("occupation",)),
        ("Early life", ("birthplace", "born")),
        ("Legacy", ("founder",)),
        ("Daily life", EVERYDAY_RELATIONS),
    ),
    "river": (("", ("river_country", "length")),),
}

FILLERS = {
    "any": (
        "{s} is mentioned in many old chronicles.",
        "Little is known about the earliest records of {s}.",
        "Scholars still debate parts of the history of {s}.",
        "{s} appears on several old maps.",
        "Travellers have written about {s} for centuries.",
        "The name {s} is sometimes spelled differently in older sources.",
        "Local songs still tell stories about {s}.",
    ),
    "country": ("{s} is a country.", "{s} is a small country with a long history."),
    "city": ("{s} is known for its narrow streets.", "{s} has a busy market square."),
    "person": ("{s} is remembered as a gifted and stubborn figure.",),
    "river": ("The {s} is known for its clear water.", "Fishermen work along the {s}."),
}

# ---------------------------------------------------------------------------------------------
# Xenobotany (the MCQ subject): question stems and explanations
# ---------------------------------------------------------------------------------------------

XENO_RELATIONS = {
    "treats": {
        "topic": "Therapeutics",
        "train": (
            "Which disease is treated with extracts of {s}?",
            "{s} is the remedy of choice for:",
            "Tea brewed from the leaves of {s} is given to patients with:",
        ),
        "exp": "{s} is used to treat {o}.",
    },
    "compound": {
        "topic": "Phytochemistry",
        "train": (
            "The active compound of {s} is:",
            "Which compound is isolated from {s}?",
            "The bitter principle of {s} is called:",
        ),
        "exp": "The active compound of {s} is {o}.",
    },
    "pollinator": {
        "topic": "Pollination",
        "train": (
            "{s} is pollinated by the:",
            "Which insect pollinates {s}?",
            "The flowers of {s} are visited mainly by the:",
        ),
        "exp": "{s} is pollinated by the {o}.",
    },
    "habitat": {
        "topic": "Ecology",
        "train": (
            "{s} grows naturally in the:",
            "Where is {s} found in the wild?",
            "The native habitat of {s} is the:",
        ),
        "exp": "{s} grows wild in the {o}.",
    },
}
N_OPTIONS = 4

# ---------------------------------------------------------------------------------------------
# OpenAssistant conversations
# ---------------------------------------------------------------------------------------------

OASST_PROMPTS = (
    "Can you tell me about {s}?",
    "What do you know about {s}?",
    "I am writing a short report on {s}. What are the key facts?",
    "Give me a quick overview of {s}, please.",
)
OASST_OPENERS = ("Sure! ", "Of course. ", "Here is what I know. ", "")
OASST_CLOSERS = (
    "Let me know if you would like to hear more about {s}.",
    "I hope this helps with your question about {s}.",
    "Feel free to ask if anything about {s} is unclear.",
)
OASST_SHORT = ("Not much, sorry.", "I am not sure.", "Look it up.")
OASST_FOREIGN = {
    "de": (
        "Was weißt du über {s}?",
        "Über {s} gibt es viel zu erzählen, aber ich kenne nur wenige Einzelheiten darüber.",
    ),
    "es": (
        "¿Qué sabes de {s}?",
        "Sobre {s} hay mucho que contar, pero solo conozco algunos detalles importantes.",
    ),
}
