/** Whisper language codes and names. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { languageCode, languageName } from '../../src/engines/stt/languages.ts';

describe('languages', () => {
  it('codes on our side, OpenAI names in verbose_json, either accepted from upstreams', () => {
    assert.equal(languageCode('english'), 'en');
    assert.equal(languageCode('English'), 'en');
    assert.equal(languageCode('en'), 'en');
    assert.equal(languageCode('castilian'), 'es');
    assert.equal(languageCode('german'), 'de');
    assert.equal(languageName('en'), 'english');
    assert.equal(languageName('de'), 'german');
    assert.equal(languageName('ja'), 'japanese');
    assert.equal(languageName('xx'), 'xx');
  });
});
