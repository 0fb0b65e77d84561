/* The compiled twin of sseload/protocol/scan.py: an LLM chunk read by a dialect's scan program,
 * without a JSON parser. A key counts where it stands as a key ("key", optional blanks and a
 * colon), not escaped inside a string (no backslash before its opening quote). */
#include "_sse.h"

static Py_ssize_t find_from(const char *s, Py_ssize_t n, Py_ssize_t from, const char *needle, Py_ssize_t m) {
    if (m <= 0)
        return -1;
    for (Py_ssize_t i = from; i + m <= n; i++) {
        const char *hit = memchr(s + i, needle[0], n - m - i + 1);
        if (!hit)
            return -1;
        i = hit - s;
        if (memcmp(hit, needle, m) == 0)
            return i;
    }
    return -1;
}

static Py_ssize_t skip_blanks(const char *s, Py_ssize_t n, Py_ssize_t j) {
    while (j < n && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r'))
        j++;
    return j;
}

/* The index of the value after each occurrence of `key` as a key, from `*from`; -1 when none (scan.py's _values). */
static Py_ssize_t value_of(const char *s, Py_ssize_t n, const Str *key, Py_ssize_t *from) {
    Py_ssize_t k;
    while ((k = find_from(s, n, *from, key->p, key->len)) >= 0) {
        *from = k + key->len;
        if (k > 0 && s[k - 1] == '\\')
            continue;
        Py_ssize_t j = skip_blanks(s, n, k + key->len);
        if (j < n && s[j] == ':')
            return skip_blanks(s, n, j + 1);
    }
    return -1;
}

/* scan.py's _number: the first occurrence's digits, up to 18; else -1. */
static int64_t number_of(const char *s, Py_ssize_t n, const Str *key) {
    Py_ssize_t from = 0, j = value_of(s, n, key, &from);
    if (j < 0 || j >= n || s[j] < '0' || s[j] > '9')
        return -1;
    int64_t v = 0;
    for (int digits = 0; j < n && s[j] >= '0' && s[j] <= '9'; j++, digits++) {
        if (digits == 18)
            return -1;
        v = v * 10 + (s[j] - '0');
    }
    return v;
}

/* scan.py's _starts: a value of `key` starts with one of the rule's values. */
static int starts(const char *s, Py_ssize_t n, const Str *key, const ScanRule *r) {
    Py_ssize_t from = 0, j;
    while ((j = value_of(s, n, key, &from)) >= 0)
        for (int v = 0; v < r->nvalues; v++)
            if (j + r->values[v].len <= n && memcmp(s + j, r->values[v].p, r->values[v].len) == 0)
                return 1;
    return 0;
}

/* scan.py's _carries: a value of the key is a non-empty string, a non-empty list or an object. */
static int carries(const char *s, Py_ssize_t n, const Str *key, char shape) {
    Py_ssize_t from = 0, j;
    while ((j = value_of(s, n, key, &from)) >= 0) {
        if (shape == 's' && j + 1 < n && s[j] == '"' && s[j + 1] != '"')
            return 1;
        if (shape == 'o' && j < n && s[j] == '{')
            return 1;
        if (shape == 'l' && j < n && s[j] == '[') {
            Py_ssize_t e = skip_blanks(s, n, j + 1);
            if (e < n && s[e] != ']')
                return 1;
        }
    }
    return 0;
}

void sse_scan(const ScanProgram *prog, const char *s, Py_ssize_t n, ScanFacts *f) {
    f->kinds = 0;
    f->act = 0;
    for (int i = 0; i < 4; i++)
        f->numbers[i] = -1;
    for (int i = 0; i < prog->nrules; i++) {
        const ScanRule *r = &prog->rules[i];
        if (r->op == 'O') {
            if ((f->kinds & r->kind) || (r->cond.len && starts(s, n, &r->cond, r) == r->negate))
                continue;
            if (carries(s, n, &r->key, r->arg))
                f->kinds |= r->kind;
        } else if (r->op == 'N') {
            if (f->numbers[r->number] < 0)
                f->numbers[r->number] = number_of(s, n, &r->key);
        } else if (!f->act) {
            f->act = starts(s, n, &r->key, r);
        }
    }
}

/* Program.blob() read back: per rule, its op, a field count and length-prefixed fields (kind, arg,
 * key, cond, negate, values...). The fields point into `blob`, which the log keeps. */
int sse_scan_compile(ScanProgram *prog, const char *blob, Py_ssize_t len) {
    static const char numbers[] = "cprk";
    Py_ssize_t i = 0;
    prog->nrules = 0;
    while (i < len) {
        if (prog->nrules == SCAN_MAX_RULES || i + 2 > len)
            goto bad;
        ScanRule *r = &prog->rules[prog->nrules++];
        memset(r, 0, sizeof *r);
        r->op = blob[i];
        int nfields = (unsigned char)blob[i + 1];
        i += 2;
        if (nfields < 5 || nfields - 5 > SCAN_MAX_VALUES)
            goto bad;
        Str f[5 + SCAN_MAX_VALUES];
        for (int k = 0; k < nfields; k++) {
            if (i >= len)
                goto bad;
            Py_ssize_t m = (unsigned char)blob[i];
            if (i + 1 + m > len)
                goto bad;
            f[k].p = blob + i + 1;
            f[k].len = m;
            i += 1 + m;
        }
        if (f[0].len != 1 || (r->op != 'O' && r->op != 'N' && r->op != 'A'))
            goto bad;
        r->kind = (unsigned char)f[0].p[0];
        r->arg = f[1].len ? f[1].p[0] : 0;
        r->key = f[2];
        r->cond = f[3];
        r->negate = f[4].len == 1 && f[4].p[0] == '1';
        r->nvalues = nfields - 5;
        for (int v = 0; v < r->nvalues; v++)
            r->values[v] = f[5 + v];
        if (r->op == 'N') {
            const char *at = r->arg ? memchr(numbers, r->arg, 4) : NULL;
            if (!at)
                goto bad;
            r->number = (int)(at - numbers);
        }
        if (!r->key.len)
            goto bad;
    }
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "not a scan program (sseload.protocol.scan.Program.blob)");
    return -1;
}
