"""Content and constraint preferences: what a user rules out, not how they like answers written.

Each constraint has the ways users state it (explicitly, or by a fact that implies it), the domain of questions
where it matters, things an answer may recommend (`suits`) and things it rules out (`rules_out`), and `flags`: a
regular expression that finds a ruled-out thing in an answer. data/constraints.py has the base model write answers
that recommend each item and keeps those the flags confirm, so a pair's rejected answer really recommends what the
user ruled out and its chosen answer really does not.
"""

import re
from dataclasses import dataclass

DOMAIN_QUESTIONS = {
    "meal": ("What should I cook for dinner tonight?", "Suggest a quick lunch I can pack for work.",
             "What's a good dish to bring to a potluck?", "What should I serve at a dinner party for six?",
             "Give me an idea for a hearty weekend breakfast."),
    "dessert": ("What dessert should I make this weekend?", "Suggest an afternoon snack.",
                "What treat should I bring to the office?", "What's a good dessert for a birthday party?"),
    "drinks": ("What should I drink to celebrate my promotion tonight?",
               "What should I order at a bar with my coworkers?", "Suggest a drink to serve at my party.",
               "What's a good drink for a cold evening?"),
    "getting_around": ("How should I get to the airport tomorrow morning?",
                       "What's the best way to explore the countryside on a weekend trip?",
                       "How can I get to work each day?", "How should I get to my friend's wedding three towns away?"),
    "vacation": ("Where should I go on vacation this summer?", "Plan a weekend getaway for me.",
                 "What's a memorable way to spend my honeymoon?", "What should I do on a trip to the coast?"),
    "outing": ("What should I do this Saturday?", "Suggest a fun evening out in the city.",
               "What's a good way to celebrate my birthday?", "What should I do on my day off?"),
    "gift": ("What should I buy my sister for her birthday?", "What's a good gift for a coworker who is leaving?",
             "Recommend something nice for my apartment.", "What should I get my dad for Father's Day?"),
    "exercise": ("Suggest a workout I can do this week.", "What's a good way to get fitter?",
                 "Recommend a sport I could take up.", "How can I stay active this winter?"),
    "pets": ("What pet should I get?", "What's a good pet for my family?", "What pet would keep me company?",
             "I want my first pet. What do you recommend?"),
    "planning": ("How can I keep track of my appointments?", "How should I find my way around a new city?",
                 "How can I remember to take my medicine every day?", "How can I keep up with my friends' birthdays?"),
    "software": ("What software should I use to edit photos?", "Recommend a program for editing videos.",
                 "What should I use to draw illustrations?", "What program should I use to record music?"),
    "leisure": ("How can I learn Spanish in my free time?", "What's a fun hobby to pick up?",
                "How should I follow the news every day?", "How can I relax after work?"),
    "outreach": ("How can I promote my small bakery?", "How can I keep in touch with old friends?",
                 "How should I find people to join my book club?", "How can I get the word out about my yard sale?"),
}


@dataclass(frozen=True)
class Constraint:
    """One thing a user rules out (see the module docstring)."""
    name: str
    texts: tuple[str, ...]
    domain: str
    suits: tuple[str, ...]
    rules_out: tuple[str, ...]
    flags: str

    def violated_by(self, answer: str) -> bool:
        """Whether `answer` mentions something this constraint rules out."""
        return re.search(self.flags, answer, re.IGNORECASE) is not None

    @property
    def questions(self) -> tuple[str, ...]:
        return DOMAIN_QUESTIONS[self.domain]


def _words(*words: str) -> str:
    """A pattern matching any of `words` as whole words (an optional plural s/es)."""
    return r"\b(?:" + "|".join(words) + r")(?:e?s)?\b"


CONSTRAINTS = (
    Constraint("vegetarian", ("I'm vegetarian.", "I stopped eating meat and fish years ago."), "meal",
               ("a lentil curry", "a vegetable stir-fry", "a mushroom risotto", "a chickpea salad", "a bean chili"),
               ("a grilled steak", "chicken wings", "beef burgers", "a salmon fillet", "pork chops"),
               _words("steak", "chicken", "beef", "salmon", "pork", "shrimp", "bacon", "ham", "turkey", "lamb",
                      "tuna", "fish", "sausage", "meat", "burger", "wing")),
    Constraint("vegan", ("I'm vegan.", "I don't eat anything that comes from an animal."), "meal",
               ("a tofu stir-fry", "a black bean soup", "a quinoa salad with roasted vegetables", "a lentil stew"),
               ("a cheese omelette", "a creamy chicken pasta", "scrambled eggs with bacon", "a yogurt parfait"),
               _words("cheese", "egg", "milk", "butter", "yogurt", "chicken", "beef", "honey", "cream", "bacon",
                      "meat", "fish", "omelette", "salmon")),
    Constraint("gluten-free", ("I have celiac disease.", "I can't eat gluten."), "meal",
               ("a rice bowl", "a baked potato with toppings", "corn tortilla tacos", "a quinoa salad"),
               ("a spaghetti bolognese", "a grilled cheese sandwich", "a pepperoni pizza", "pancakes"),
               _words("pasta", "spaghetti", "bread", "sandwich", "pizza", "bagel", "pancake", "couscous", "toast",
                      "noodle", "wheat", "flour", "croissant", "muffin", "bun")),
    Constraint("nut allergy", ("I'm allergic to nuts.", "My son has a severe peanut allergy and eats with us."),
               "dessert",
               ("a fruit salad", "oatmeal raisin cookies", "a lemon sorbet", "apple crumble"),
               ("peanut butter cookies", "a pecan pie", "almond biscotti", "a walnut brownie"),
               _words("nut", "peanut", "almond", "walnut", "cashew", "pecan", "pistachio", "hazelnut", "praline",
                      "nutella", "marzipan")),
    Constraint("lactose intolerant", ("I'm lactose intolerant.", "Dairy makes me sick."), "dessert",
               ("a mango sorbet", "dark chocolate dipped strawberries", "a fruit salad", "banana oat bars"),
               ("a cheesecake", "an ice cream sundae", "a milkshake", "a creamy tiramisu"),
               _words("cheese", "cheesecake", "milk", "cream", "butter", "yogurt", "milkshake", "tiramisu",
                      "custard", "sundae", "latte", "mascarpone")),
    Constraint("no pork", ("I don't eat pork.", "I keep halal."), "meal",
               ("a chicken shawarma wrap", "a lamb tagine", "a vegetable curry", "grilled fish tacos"),
               ("a bacon cheeseburger", "a ham and cheese sandwich", "pork ribs", "a pepperoni pizza"),
               _words("pork", "bacon", "ham", "pepperoni", "sausage", "prosciutto", "salami", "lard", "rib",
                      "chorizo")),
    Constraint("shellfish allergy", ("I'm allergic to shellfish.", "Shrimp put me in hospital once."), "meal",
               ("a roast chicken", "a vegetable lasagna", "a beef stew", "a mushroom omelette"),
               ("a shrimp scampi", "a lobster roll", "a seafood paella", "steamed mussels"),
               _words("shrimp", "prawn", "lobster", "crab", "mussel", "oyster", "scallop", "clam", "shellfish",
                      "paella", "seafood", "scampi")),
    Constraint("no spicy food", ("I can't handle spicy food.", "Anything hot makes my stomach burn."), "meal",
               ("a creamy chicken pot pie", "a mild vegetable soup", "a lemon herb pasta", "a mushroom risotto"),
               ("a lamb vindaloo", "buffalo hot wings", "a spicy Sichuan stir-fry", "jalapeno poppers"),
               r"\b(?:spicy|vindaloo|jalape\w*|sriracha|hot sauce|buffalo|habanero|cayenne|sichuan|szechuan|"
               r"hot wings?|chil(?:i|li) (?:peppers?|flakes))\b"),
    Constraint("diabetic", ("I'm diabetic.", "My doctor told me to cut out sugar."), "dessert",
               ("a bowl of berries with plain yogurt", "roasted almonds", "apple slices with peanut butter",
                "a vegetable platter with hummus"),
               ("a chocolate cake", "glazed donuts", "a bag of candy", "a caramel sundae"),
               _words("cake", "soda", "candy", "candies", "donut", "doughnut", "sundae", "cookie", "pastry",
                      "caramel", "frosting", "brownie", "fudge", "syrup")),
    Constraint("no oven", ("I don't have an oven.", "My kitchen only has a stovetop."), "meal",
               ("a vegetable stir-fry", "a pan-fried omelette", "a pot of chili", "a noodle soup"),
               ("a roast chicken", "a baked lasagna", "a tray of roasted vegetables", "a baked mac and cheese"),
               r"\b(?:oven|bake[ds]?|baking|roast(?:ed|ing)?|casserole|lasagna)\b"),
    Constraint("no alcohol", ("I don't drink alcohol.", "I've been sober for two years."), "drinks",
               ("a sparkling lemonade", "an iced tea", "a virgin mojito", "a hot chocolate"),
               ("a bottle of champagne", "a glass of red wine", "a pint of beer", "a whiskey sour"),
               r"\b(?:champagne|wine|beers?|whiske?y|vodka|gin|rum|margaritas?|tequila|prosecco|"
               r"cocktails?|(?<!non-)alcohol(?:ic)?|booze|sangria|martini)\b"),
    Constraint("no caffeine", ("I avoid caffeine.", "Coffee keeps me awake all night."), "drinks",
               ("a chamomile tea", "a warm glass of milk", "a fruit smoothie", "a ginger lemon infusion"),
               ("a double espresso", "a caramel latte", "an energy drink", "a cold brew coffee"),
               r"\b(?:coffee|espresso|latte|cappuccino|energy drinks?|cola|caffeine|matcha|cold brew|"
               r"black tea|mocha)\b"),
    Constraint("doesn't drive", ("I don't drive.", "I never got a driver's license."), "getting_around",
               ("the train", "a city bus", "a bike", "a taxi"),
               ("driving your own car", "a rental car", "a road trip in your car", "driving and parking nearby"),
               r"\b(?:driv(?:e|es|ing)|rental car|rent a car|car rental|your car|road trip|park(?:ing)?)\b"),
    Constraint("no flying", ("I'm afraid of flying.", "I refuse to get on a plane."), "vacation",
               ("a train journey through the Alps", "a lakeside cabin a few hours away", "a road trip along the coast",
                "a nearby national park"),
               ("a flight to Bali", "a trip to Tokyo by plane", "flying to Hawaii", "a flight to Paris"),
               r"\b(?:fly|flying|flights?|planes?|airplanes?|airlines?|airports?|jet)\b"),
    Constraint("seasick", ("I get seasick.", "Boats make me terribly ill."), "vacation",
               ("a mountain village", "a city break in Rome", "a countryside inn", "a forest cabin"),
               ("a Caribbean cruise", "a sailing trip", "a ferry tour of the islands", "a whale watching boat tour"),
               r"\b(?:cruises?|sail(?:ing)?|boats?|ferry|ferries|yachts?|whale watching|kayak(?:ing)?)\b"),
    Constraint("hates crowds", ("I hate crowds.", "Busy places make me anxious."), "outing",
               ("a quiet hike", "a picnic in a small park", "a cooking class at home", "a weekday museum visit"),
               ("a music festival", "a theme park", "a packed nightclub", "a stadium concert"),
               r"\b(?:festivals?|theme parks?|amusement parks?|nightclubs?|clubs?|stadiums?|concerts?|crowds?|"
               r"crowded|parades?|packed)\b"),
    Constraint("afraid of heights", ("I'm afraid of heights.", "I get dizzy even on a balcony."), "outing",
               ("a board game cafe", "a walk by the river", "a pottery class", "a cooking class"),
               ("skydiving", "a hot-air balloon ride", "zip-lining", "rock climbing"),
               r"\b(?:skydiv\w*|bungee|hot-?air|balloons?|zip-?lin\w*|climb\w*|observation deck|rooftops?|towers?|"
               r"paraglid\w*)\b"),
    Constraint("toddler", ("I'm bringing my two-year-old.", "I have a toddler with me all day."), "outing",
               ("a children's museum", "a petting zoo", "a playground picnic", "a story time at the library"),
               ("a wine tasting", "a pub crawl", "a late-night comedy club", "a casino night"),
               r"\b(?:wine|pubs?|bars?|casinos?|nightclubs?|clubs?|brewery|breweries|cocktails?|late-night)\b"),
    Constraint("wheelchair", ("I use a wheelchair.", "I can't walk, so I get around in a wheelchair."), "vacation",
               ("a city break with accessible museums", "a beach resort with boardwalks",
                "a river cruise with step-free cabins", "a spa hotel"),
               ("a mountain hiking trek", "a rock climbing trip", "a cave tour down steep stairs",
                "a backpacking trip"),
               r"\b(?:hik(?:e|es|ing)|trek(?:s|king)?|climb\w*|stairs|steps|trails?|backpack\w*|mountaineering)\b"),
    Constraint("bad knees", ("I have bad knees.", "My knees hurt whenever I run."), "exercise",
               ("swimming", "cycling", "water aerobics", "upper-body weights"),
               ("running", "jumping rope", "basketball", "squats and lunges"),
               r"\b(?:run|runs|running|jog\w*|jump\w*|basketball|squats?|lunges?|stairs|sprint\w*|tennis|soccer)\b"),
    Constraint("small apartment pets", ("I live in a tiny studio apartment.", "My flat is very small."), "pets",
               ("a goldfish", "a hamster", "a small lizard", "a pair of budgies"),
               ("a Great Dane", "a horse", "a large dog", "a German Shepherd"),
               r"\b(?:great danes?|horses?|large dogs?|big dogs?|german shepherds?|labradors?|huskies|husky|"
               r"retrievers?)\b"),
    Constraint("cat allergy", ("I'm allergic to cats.", "Cats make me sneeze and wheeze."), "pets",
               ("a goldfish", "a turtle", "a parrot", "a rabbit"),
               ("a kitten", "a Persian cat", "a cat from the shelter", "a Maine Coon cat"),
               r"\b(?:cats?|kittens?|kitty|kitties|feline|maine coon|persian)\b"),
    Constraint("no smartphone", ("I don't own a smartphone.", "I only have an old flip phone."), "planning",
               ("a paper planner", "a wall calendar", "a printed map", "sticky notes on the fridge"),
               ("a calendar app", "Google Maps on your phone", "smartphone reminders", "a to-do app"),
               r"\b(?:apps?|smartphones?|iphone|android|google maps|notifications?)\b"),
    Constraint("linux", ("I only use Linux.", "My computer runs Ubuntu."), "software",
               ("GIMP", "Kdenlive", "Krita", "Ardour"),
               ("Adobe Photoshop", "Final Cut Pro", "Procreate", "GarageBand"),
               r"\b(?:photoshop|final cut|procreate|garageband|logic pro|lightroom|paint\.net|imovie)\b"),
    Constraint("screen reader", ("I use a screen reader.", "I'm blind."), "leisure",
               ("a podcast", "an audiobook", "a radio program", "audio lessons"),
               ("a picture book", "watching YouTube videos", "an infographic", "a coloring book"),
               r"\b(?:watch(?:ing)?|videos?|pictures?|infographics?|colou?ring|painting|drawing|jigsaws?|"
               r"photos?|photography|youtube)\b"),
    Constraint("deaf", ("I'm deaf.", "I lost my hearing as a child."), "leisure",
               ("a graphic novel", "a subtitled film", "a painting class", "a newspaper"),
               ("a podcast", "an audiobook", "a radio show", "a music concert"),
               r"\b(?:podcasts?|audiobooks?|radio|concerts?|listen\w*|music)\b"),
    Constraint("no social media", ("I don't use social media.", "I deleted all my social accounts."), "outreach",
               ("flyers", "an email newsletter", "the local newspaper", "phone calls"),
               ("an Instagram account", "a Facebook page", "TikTok videos", "a Twitter thread"),
               r"\b(?:instagram|facebook|tiktok|twitter|social media|snapchat|linkedin|hashtags?)\b"),
    Constraint("budget", ("My budget is under $50.", "I can't spend more than fifty dollars."), "gift",
               ("a paperback novel", "a scented candle", "a board game", "a houseplant"),
               ("a new iPhone", "a designer handbag", "a 4K television", "a luxury spa weekend"),
               r"\b(?:iphone|designer|handbags?|laptops?|televisions?|tv|4k|luxury|diamonds?|spa weekend)\b|"
               r"\$\s?[1-9]\d{2,}"),
    Constraint("kosher", ("I keep kosher.", "My family follows Jewish dietary laws."), "meal",
               ("a roast chicken with vegetables", "a falafel plate", "grilled salmon", "a vegetable lasagna"),
               ("a shrimp cocktail", "a bacon cheeseburger", "a ham sandwich", "a lobster bisque"),
               _words("shrimp", "prawn", "lobster", "crab", "bacon", "ham", "pork", "cheeseburger", "clam",
                      "oyster", "sausage", "pepperoni")),
    Constraint("low sodium", ("My doctor put me on a low-salt diet.", "I have high blood pressure and must watch my "
                              "salt."), "meal",
               ("a steamed vegetable bowl", "a fresh garden salad", "grilled chicken with herbs", "a lentil soup"),
               ("a bowl of instant ramen", "a salami sandwich", "a soy-glazed stir-fry", "a plate of cured ham"),
               _words("ramen", "salami", "soy", "pickle", "bacon", "jerky", "anchovy", "anchovies", "ham",
                      "pretzel", "cured", "chip")),
    Constraint("no eggs", ("I'm allergic to eggs.", "Eggs give me hives."), "dessert",
               ("a fruit salad", "a mango sorbet", "chocolate-dipped strawberries", "a baked apple"),
               ("a lemon meringue pie", "a vanilla custard", "a chocolate souffle", "a creme brulee"),
               r"\b(?:eggs?|meringues?|custards?|souffl[eé]s?|cr[eè]me br[uû]l[eé]e|flan|mayonnaise)\b"),
    Constraint("pregnant", ("I'm pregnant.", "I'm expecting a baby in the spring."), "drinks",
               ("a sparkling grape juice", "a fruit smoothie", "a ginger lemonade", "a mocktail spritzer"),
               ("a glass of wine", "a margarita", "a gin and tonic", "a craft beer"),
               r"\b(?:wines?|margaritas?|gin|beers?|cocktails?|vodka|rum|champagne|(?<!non-)alcohol(?:ic)?|"
               r"whiske?y|tequila|prosecco|sangria)\b"),
    Constraint("asthma", ("I have asthma.", "Hard running leaves me gasping for air."), "exercise",
               ("yoga", "swimming", "gentle walking", "tai chi"),
               ("marathon training", "high-intensity interval training", "cross-country skiing", "sprinting"),
               r"\b(?:marathons?|high-intensity|hiit|ski(?:s|ing)?|sprint\w*|run|runs|running|jog\w*|"
               r"endurance)\b"),
    Constraint("dog allergy", ("I'm allergic to dogs.", "Dogs make my eyes swell shut."), "pets",
               ("a goldfish", "a turtle", "a parakeet", "a hamster"),
               ("a puppy", "a golden retriever", "a beagle", "a labrador"),
               r"\b(?:dogs?|pupp(?:y|ies)|retrievers?|beagles?|labradors?|poodles?|terriers?|canine)\b"),
    Constraint("mac user", ("I only use a Mac.", "My computer is a MacBook."), "software",
               ("Pixelmator", "iMovie", "GarageBand", "Affinity Photo"),
               ("Paint.NET", "Windows Movie Maker", "Microsoft Paint", "Notepad++"),
               r"(?:\bpaint\.net|\bmovie maker\b|\bmicrosoft paint\b|\bms ?paint\b|\bnotepad\+\+|"
               r"\bwindows(?:-only)?\b)"),
    Constraint("hates cold", ("I hate cold weather.", "I'm always freezing, even in autumn."), "vacation",
               ("a beach in Mexico", "a Greek island", "a desert resort in Arizona", "a tropical island"),
               ("a ski trip to Switzerland", "a glacier tour in Iceland", "a winter trip to Lapland",
                "an Alaskan cruise"),
               r"\b(?:ski\w*|iceland\w*|glaciers?|lapland|alaska\w*|snow\w*|arctic|antarctic\w*|igloos?|"
               r"ice hotels?|winter)\b"),
    Constraint("thin walls", ("I live in an apartment with thin walls.", "My neighbours complain about any noise."),
               "leisure",
               ("knitting", "reading", "sketching", "jigsaw puzzles"),
               ("learning the drums", "playing the trumpet", "electric guitar", "karaoke nights"),
               r"\b(?:drums?|drumming|trumpets?|electric guitars?|saxophones?|amplifiers?|amps?|karaoke|tubas?)\b"),
    Constraint("no internet", ("I don't have internet at home.", "My house has no wifi."), "leisure",
               ("a library book", "a radio program", "a crossword book", "a paperback novel"),
               ("streaming on Netflix", "an online course", "YouTube tutorials", "a language app"),
               r"\b(?:netflix|online|youtube|stream\w*|apps?|websites?|duolingo|spotify|wi-?fi)\b"),
    Constraint("shy", ("I'm terrible at talking to strangers.", "Speaking to people I don't know makes me freeze."),
               "outreach",
               ("an email newsletter", "flyers", "a simple website", "a note in the community bulletin"),
               ("knocking on doors", "cold-calling people", "giving a public talk", "networking events"),
               r"\b(?:door-to-door|knock\w* on doors|cold-?call\w*|public (?:talks?|speaking)|speech(?:es)?|"
               r"networking events?|talk to strangers|presentations?)\b"),
    Constraint("noise sensitive", ("Loud noise gives me migraines.", "I have very sensitive ears."), "outing",
               ("a botanical garden", "a library reading room", "a quiet art gallery", "a nature walk"),
               ("a rock concert", "a monster truck show", "a fireworks display", "a nightclub"),
               r"\b(?:concerts?|monster trucks?|fireworks?|nightclubs?|clubs?|rock|loud|dj|festivals?|stadiums?)\b"),
    Constraint("sober recipient", ("My sister doesn't drink alcohol.", "My dad has been sober for ten years."), "gift",
               ("a cookbook", "a cozy blanket", "a houseplant", "a jigsaw puzzle"),
               ("a bottle of wine", "a whiskey set", "a craft beer sampler", "a cocktail kit"),
               r"\b(?:wines?|whiske?y|beers?|cocktails?|champagne|vodka|gin|rum|bourbon|brewery|"
               r"(?<!non-)alcohol(?:ic)?|bar cart)\b"),
    Constraint("minimalist", ("I'm a minimalist and hate clutter.", "I keep almost nothing in my home, on purpose."),
               "gift",
               ("a concert ticket", "a cooking class", "a spa voucher", "a dinner out"),
               ("a decorative figurine", "a set of throw pillows", "a collection of knick-knacks", "a large bookshelf"),
               r"\b(?:figurines?|throw pillows?|knick-?knacks?|ornaments?|trinkets?|bookshel(?:f|ves)|shel(?:f|ves)|"
               r"collectibles?|decorations?|vases?|statues?)\b"),
    Constraint("hay fever", ("I have terrible hay fever.", "Pollen makes me miserable."), "outing",
               ("a museum visit", "a movie night", "a bowling alley", "an escape room"),
               ("a picnic in a flower meadow", "a botanical garden tour", "a hike through the fields",
                "a flower festival"),
               r"\b(?:picnics?|meadows?|gardens?|botanical|flowers?|fields?|hik\w*|parks?|blossoms?|pollen)\b"),
    Constraint("can't swim", ("I can't swim.", "Deep water terrifies me."), "vacation",
               ("a city break in Prague", "a mountain cabin", "a wine region tour", "a safari in Kenya"),
               ("a scuba diving trip", "a snorkeling holiday", "a surfing camp", "a white-water rafting trip"),
               r"\b(?:scuba|div(?:e|es|ing)|snorkel\w*|surf\w*|raft\w*|swim\w*|kayak\w*|beach(?:es)?)\b"),
)


def constraint_texts() -> list[str]:
    """Every way the catalog states a constraint."""
    return [text for constraint in CONSTRAINTS for text in constraint.texts]
