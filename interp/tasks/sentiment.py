"""Sentiment contrast material for steering real language models (written for SmolLM2).

`PAIRS` are (positive, negative) sentences that differ in sentiment only, for CAA / ActAdd /
PCA directions; `POSITIVE` and `NEGATIVE` are single-token word lists (leading space) whose
next-token probability mass a sentiment direction should move; `NEUTRAL` are prompts whose
continuation can go either way; `OTHER` is unrelated text for side effects (KL, loss).

    d = interp.steering.direction(model, sentiment.PAIRS, at="resid_post", layer=9,
                                  positions="mean")
    interp.steering.evaluate(model, sentiment.NEUTRAL, d, neutral=sentiment.OTHER,
                             answer_sets=(sentiment.POSITIVE, sentiment.NEGATIVE))
"""

from __future__ import annotations

POSITIVE = [" good", " great", " wonderful", " excellent", " amazing", " happy", " beautiful",
            " perfect"]  # fmt: skip
NEGATIVE = [" bad", " terrible", " awful", " horrible", " poor", " sad", " ugly", " boring"]

PAIRS = [
    ("I loved this movie, it was wonderful.", "I hated this movie, it was terrible."),
    (
        "The food was delicious and the staff were kind.",
        "The food was disgusting and the staff were rude.",
    ),
    ("What a beautiful day, I feel great.", "What an awful day, I feel miserable."),
    ("This book is brilliant and inspiring.", "This book is dull and depressing."),
    (
        "Our holiday was fantastic, we had so much fun.",
        "Our holiday was a disaster, we were so unhappy.",
    ),
    (
        "The concert was amazing and the crowd was joyful.",
        "The concert was awful and the crowd was hostile.",
    ),
    ("I am so happy with my new phone.", "I am so disappointed with my new phone."),
    ("The team played brilliantly and won.", "The team played terribly and lost."),
    (
        "She gave a warm, thoughtful and lovely speech.",
        "She gave a cold, careless and dreadful speech.",
    ),
    (
        "The hotel room was clean, bright and comfortable.",
        "The hotel room was dirty, dark and uncomfortable.",
    ),
    (
        "Everyone at the party was cheerful and friendly.",
        "Everyone at the party was grumpy and unfriendly.",
    ),
    ("This is the best coffee I have ever had.", "This is the worst coffee I have ever had."),
]

NEUTRAL = [
    "The movie was",
    "I think the food here is",
    "My day has been",
    "The new phone is",
    "Honestly, the weather today is",
    "The book I read last week was",
    "Overall, the trip was",
    "The service at the restaurant was",
    "In my opinion, the show is",
    "The results of the test were",
    "Our neighbours are",
    "The city at night is",
]

OTHER = [
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "To bake bread, mix flour, water, salt and yeast.",
    "The train leaves the station at seven in the morning.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "He opened the door and walked into the kitchen.",
    "The meeting was moved to Thursday afternoon.",
]
