def strategy(board):
    n = len(board)

    def slide(row):
        tiles = [v for v in row if v]
        out = []
        score = 0
        i = 0
        while i < len(tiles):
            if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
                out.append(tiles[i] * 2)
                score += tiles[i] * 2
                i += 2
            else:
                out.append(tiles[i])
                i += 1
        return out + [0] * (n - len(out)), score

    def move(b, key):
        if key in ("é", "u"):
            b = [list(c) for c in zip(*b)]
        rows = []
        gain = 0
        for r in b:
            if key in ("i", "u"):
                s, g = slide(r[::-1])
                s = s[::-1]
            else:
                s, g = slide(r)
            rows.append(s)
            gain += g
        if key in ("é", "u"):
            rows = [list(c) for c in zip(*rows)]
        return rows, gain

    best, best_value = "a", None
    for key in ["é", "a", "u", "i"]:
        after, gain = move(board, key)
        if after == board:
            continue
        empty = sum(row.count(0) for row in after)
        corner = after[n - 1][0]
        value = empty * 10 + gain + corner
        if best_value is None or value > best_value:
            best, best_value = key, value
    return best
