/** Counting a GBNF grammar's repetitions as llama.cpp expands them: each rule's `{m,n}` once, however often the rule is used. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { repetitionProblem } from '../../src/engines/llm/schema-limits.ts';

describe('grammar repetitions (GRAMMAR_MAX_REPETITIONS)', () => {
  it('adds up {m}, {m,} and {m,n} by their larger bound, and names the limit past it', () => {
    const grammar = 'root ::= a b c\na ::= "x"{0,300}\nb ::= "y"{200,}\nc ::= [0-9a-f]{4} "z"{10,20}';
    assert.equal(repetitionProblem(grammar, 524), undefined); // 300 + 200 + 4 + 20
    assert.match(repetitionProblem(grammar, 523)!, /more than 523 repetitions \(GRAMMAR_MAX_REPETITIONS\)/);
  });

  it('refuses one bound over 1,000 whatever the total allows', () => {
    assert.equal(repetitionProblem('s ::= "a"{0,1000}', 1e7), undefined);
    assert.match(repetitionProblem('s ::= "a"{0,1001}', 1e7)!, /of 1001 is more than llama\.cpp's grammar can enforce/);
    assert.match(repetitionProblem('s ::= "a"{1500,}', 1e7)!, /of 1500/);
  });

  it('skips what string literals and character classes hold (a property name or enum value may read "{5000}")', () => {
    assert.equal(repetitionProblem('root ::= "\\"p{5000}\\"" [{}0-9]{3} "\\"{1200}"', 10), undefined);
  });
});
