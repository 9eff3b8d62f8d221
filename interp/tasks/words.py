"""The synthetic world shared by the task generators and the organism's vocabulary.

Every name, place, object, city and job is a single token for GPT-2 (with its leading space), so
the generators produce valid prompts for GPT-2 as well as for the organism's word-level tokenizer.
"""

from __future__ import annotations

NAMES = (
    "Mary John Tom James Paul Mark David Michael Sarah Anna Emma Alice Kate Lisa Laura Rachel "
    "Jack Peter George Daniel Chris Steve Kevin Brian Andrew Ryan Adam Sam Max Ben Tim Dan "
    "Joe Alex Jane Amy Helen Grace Rose Susan Linda Karen Nancy Julia Lucy Ruth Jessica Emily "
    "Eric Scott Jason Matt Henry Frank Arthur Victor Martin Simon Oliver Harry Jacob Leo Luke "
    "Ian"
).split()

PLACES = (
    "store garden school park hospital office station restaurant library beach church market "
    "kitchen house river bank hotel museum shop farm"
).split()

OBJECTS = (
    "drink book ball key ring letter bag apple flower computer gift pen hat bottle box card "
    "phone cake coin bird"
).split()

CITIES = ("Paris London Berlin Rome Madrid Tokyo Boston Dublin Vienna Cairo Sydney Chicago").split()

JOBS = ("doctor teacher lawyer farmer writer singer pilot nurse driver painter baker judge").split()

# Ten-plus IOI templates: {A} and {B} are introduced, {S} (a repeat of one of them) acts, and
# the prompt ends right before the other name (the indirect object). No template starts with a
# name: names must always follow a space, as GPT-2 single-token names do.
IOI_TEMPLATES = (
    "Then, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to",
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {S} decided to give it to",
    "After {A} and {B} went to the {PLACE}, {S} gave a {OBJECT} to",
    "While {A} and {B} were working at the {PLACE}, {S} gave a {OBJECT} to",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE}. {S} gave it to",
    "When {A} and {B} arrived at the {PLACE}, {S} handed the {OBJECT} to",
    "Today {A} and {B} were at the {PLACE}. {S} threw the {OBJECT} to",
    "Later, {A} and {B} walked into the {PLACE}. {S} showed the {OBJECT} to",
    "Yesterday {A} and {B} visited the {PLACE}, and {S} sent a {OBJECT} to",
    "At the {PLACE}, {A} and {B} shared a {OBJECT}. Then {S} gave it to",
    "The {PLACE} was busy when {A} and {B} met. {S} passed a {OBJECT} to",
    "Then, {A} and {B} had a long talk at the {PLACE}. Afterwards {S} gave a {OBJECT} to",
)

RECALL_TEMPLATES = {
    "city": "Q: Where does {P} live? A:",
    "job": "Q: What does {P} work as? A:",
}
STATEMENT_TEMPLATES = {
    "city": "{P} lives in {X}. True or false? A:",
    "job": "{P} works as a {X}. True or false? A:",
}
TRUE_FALSE = ("true", "false")

# Words the organism sees in filler text around the tasks, so its vocabulary has a general pool.
FILLER = (
    "the a an of in on at to and or but with from by for is was are were be been has had have "
    "it he she they we you this that these those some many few all each every other new old "
    "big small long short good bad red blue green white black happy sad fast slow early late "
    "day night week year time way thing man woman child friend family world city home door "
    "window table chair road car dog cat tree sun moon water fire stone paper music story "
    "game idea plan word name question answer number line point hand eye face head room work "
    "life went came saw made took gave found said told asked thought knew felt kept left ran "
    "walked opened closed read wrote sang played built carried brought bought sold met liked "
    "loved then when after while before later yesterday again also only very just still never "
    "always"
).split()
