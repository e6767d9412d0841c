def strategy(board):
    def slide(row):
        tiles = [v for v in row if v]
        out = []
        i = 0
        while i < len(tiles):
            if i + 1 < len(tiles) and tiles[i] == tiles[i + 1]:
                out.append(tiles[i] * 2)
                i += 2
            else:
                out.append(tiles[i])
                i += 1
        return out + [0] * (len(row) - len(out))

    def moved(b, key):
        cols = [list(c) for c in zip(*b)]
        if key == "a":
            return [slide(r) for r in b] != b
        if key == "i":
            return [slide(r[::-1])[::-1] for r in b] != b
        if key == "é":
            return [slide(c) for c in cols] != cols
        return [slide(c[::-1])[::-1] for c in cols] != cols

    for key in ["u", "a", "i", "é"]:
        if moved(board, key):
            return key
    return "u"
