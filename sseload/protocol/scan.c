/* The compiled twin of sseload/protocol/openai.py's scan (openai_facts, openai_notable): an
 * OpenAI-style chunk read without a JSON parser. A key counts where it stands as a key ("key",
 * optional blanks and a colon), not escaped inside a string (no backslash before its opening quote). */
#include "_sse.h"

static Py_ssize_t find_from(const char *s, Py_ssize_t n, Py_ssize_t from, const char *needle, Py_ssize_t m) {
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

/* The index of the value after each occurrence of `key` (quoted) as a key, from `*from`; -1 when
 * none (openai.py's _values). */
static Py_ssize_t value_of(const char *s, Py_ssize_t n, const char *key, Py_ssize_t m, Py_ssize_t *from) {
    Py_ssize_t k;
    while ((k = find_from(s, n, *from, key, m)) >= 0) {
        *from = k + m;
        if (k > 0 && s[k - 1] == '\\')
            continue;
        Py_ssize_t j = skip_blanks(s, n, k + m);
        if (j < n && s[j] == ':')
            return skip_blanks(s, n, j + 1);
    }
    return -1;
}

static int has_text(const char *s, Py_ssize_t n, const char *key, Py_ssize_t m) {
    Py_ssize_t from = 0, j;
    while ((j = value_of(s, n, key, m, &from)) >= 0)
        if (j + 1 < n && s[j] == '"' && s[j + 1] != '"')
            return 1;
    return 0;
}

/* openai.py's _number: the first occurrence's digits, up to 18; else -1. */
static int64_t number_of(const char *s, Py_ssize_t n, const char *key, Py_ssize_t m) {
    Py_ssize_t from = 0, j = value_of(s, n, key, m, &from);
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

static int carries_output(const char *s, Py_ssize_t n, int kinds) {
    if ((kinds & OUTPUT_CONTENT) && (has_text(s, n, "\"content\"", 9) || has_text(s, n, "\"text\"", 6)))
        return 1;
    if ((kinds & OUTPUT_REASONING)
        && (has_text(s, n, "\"reasoning_content\"", 19) || has_text(s, n, "\"reasoning\"", 11)))
        return 1;
    if (!(kinds & OUTPUT_TOOL_CALLS))
        return 0;
    Py_ssize_t from = 0, j;
    while ((j = value_of(s, n, "\"tool_calls\"", 12, &from)) >= 0) {
        if (j < n && s[j] == '[') {
            Py_ssize_t e = skip_blanks(s, n, j + 1);
            if (e < n && s[e] != ']')
                return 1;
        }
    }
    return 0;
}

int sse_openai_facts(const char *s, Py_ssize_t n, int kinds, int64_t *completion_tokens, int64_t *prompt_tokens) {
    *completion_tokens = number_of(s, n, "\"completion_tokens\"", 19);
    *prompt_tokens = number_of(s, n, "\"prompt_tokens\"", 15);
    return carries_output(s, n, kinds);
}

int sse_openai_notable(const char *s, Py_ssize_t n) {
    Py_ssize_t from = 0, j;
    while ((j = value_of(s, n, "\"finish_reason\"", 15, &from)) >= 0)
        if (j < n && s[j] == '"')
            return 1;
    from = 0;
    while ((j = value_of(s, n, "\"error\"", 7, &from)) >= 0)
        if (j < n && (s[j] == '{' || s[j] == '"'))
            return 1;
    from = 0;
    while ((j = value_of(s, n, "\"object\"", 8, &from)) >= 0)
        if (j + 7 <= n && memcmp(s + j, "\"error\"", 7) == 0)
            return 1;
    return 0;
}
