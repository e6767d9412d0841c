def strategy(board):
    import random
    return random.choice(["é", "a", "u", "i"])
